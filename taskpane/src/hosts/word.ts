/** Word glue: read the document or the selection; replace the selection as a tracked change. */
import { supports } from "./office";
import { HostError, type WordHost } from "./types";

async function readBody(): Promise<string> {
  return Word.run(async (context) => {
    const body = context.document.body;
    body.load("text");
    await context.sync();
    return body.text;
  });
}

async function readSelection(): Promise<string> {
  return Word.run(async (context) => {
    const range = context.document.getSelection();
    range.load("text");
    await context.sync();
    return range.text;
  });
}

/**
 * Insert `text` over the selection. With WordApi 1.4 the document is switched to "track all" for the
 * insertion and switched back to whatever the user had, even if the insertion fails, so the rewrite
 * appears in Word's Review tab for the user to accept or reject. Without 1.4 the text is inserted as is.
 */
async function rewriteSelection(text: string, track: boolean): Promise<{ tracked: boolean }> {
  return Word.run(async (context) => {
    const document = context.document;
    const range = document.getSelection();
    range.load("text");
    let previous: Word.ChangeTrackingMode | `${Word.ChangeTrackingMode}` | undefined;
    if (track) {
      document.load("changeTrackingMode");
      await context.sync();
      previous = document.changeTrackingMode;
    } else {
      await context.sync();
    }
    if (!range.text.trim()) throw new HostError("Select the text to rewrite first.");
    try {
      if (track) document.changeTrackingMode = Word.ChangeTrackingMode.trackAll;
      range.insertText(text, Word.InsertLocation.replace);
      await context.sync();
    } finally {
      if (track && previous !== undefined && previous !== Word.ChangeTrackingMode.trackAll) {
        document.changeTrackingMode = previous;
        await context.sync();
      }
    }
    return { tracked: track };
  });
}

export function createWordHost(): WordHost {
  const canTrackChanges = supports("WordApi", "1.4");
  return {
    kind: "word",
    canTrackChanges,
    readDocument: readBody,
    readSelection,
    rewriteSelection: (text) => rewriteSelection(text, canTrackChanges),
    documentRef: () => Office.context.document?.url || null,
    onSelectionChanged(listener: () => void) {
      const doc = Office.context.document;
      if (!doc?.addHandlerAsync) return () => undefined;
      doc.addHandlerAsync(Office.EventType.DocumentSelectionChanged, listener);
      return () => doc.removeHandlerAsync(Office.EventType.DocumentSelectionChanged, { handler: listener });
    },
  };
}
