// The Word glue against office-addin-mock, which enforces Word's load/sync rules: reading a property
// that was not loaded and synced gives an error value instead of the text, so these tests fail if the
// glue forgets either step.
import { OfficeMockObject } from "office-addin-mock";
import { afterEach, describe, expect, it } from "vitest";
import { createWordHost } from "../../src/hosts/word";
import { HostError } from "../../src/hosts/types";

interface Inserted {
  text: string;
  where: string;
  mode: unknown;
}

function install(options: { wordApi: string; mode?: string; selection?: string; failInsert?: boolean }) {
  const inserted: Inserted[] = [];
  // The request context is the mock (it enforces load/sync); enums and Office.context are plain values
  // in the real Office.js, so they are plain objects here.
  const word = new OfficeMockObject({
    context: {
      document: {
        changeTrackingMode: options.mode ?? "Off",
        body: { text: "The whole agreement." },
        selection: { text: options.selection ?? "two years" },
        getSelection(this: { selection: unknown }) {
          return this.selection;
        },
      },
    },
    run: async function (this: { context: unknown }, callback: (context: unknown) => Promise<unknown>) {
      return callback(this.context);
    },
  });
  const document = word.context.document;
  document.selection.insertText = (text: string, where: string) => {
    if (options.failInsert) throw new Error("GeneralException");
    inserted.push({ text, where, mode: document.changeTrackingMode });
  };
  const minor = Number(options.wordApi.split(".")[1]);
  (globalThis as { Word?: unknown }).Word = {
    run: word.run.bind(word),
    ChangeTrackingMode: { off: "Off", trackAll: "TrackAll", trackMineOnly: "TrackMineOnly" },
    InsertLocation: { replace: "Replace" },
  };
  (globalThis as { Office?: unknown }).Office = {
    context: {
      requirements: { isSetSupported: (name: string, version: string) => name === "WordApi" && minor >= Number(version.split(".")[1]) },
      document: { url: "C:\\Docs\\Agreement.docx" },
    },
  };
  return { inserted, document };
}

afterEach(() => {
  delete (globalThis as { Word?: unknown }).Word;
  delete (globalThis as { Office?: unknown }).Office;
});

describe("Word glue", () => {
  it("reads the document body and the selection", async () => {
    install({ wordApi: "1.3", selection: "two years" });
    const host = createWordHost();
    expect(await host.readDocument()).toBe("The whole agreement.");
    expect(await host.readSelection()).toBe("two years");
  });

  it("inserts the rewrite as a tracked change with WordApi 1.4, then restores the user's mode", async () => {
    const { inserted, document } = install({ wordApi: "1.4", mode: "Off" });
    const host = createWordHost();
    expect(host.canTrackChanges).toBe(true);
    expect(await host.rewriteSelection("24 months")).toEqual({ tracked: true });
    expect(inserted).toEqual([{ text: "24 months", where: "Replace", mode: "TrackAll" }]);
    expect(document.changeTrackingMode).toBe("Off");
  });

  it("leaves tracking on when the user already tracks everything", async () => {
    const { inserted, document } = install({ wordApi: "1.4", mode: "TrackAll" });
    await createWordHost().rewriteSelection("24 months");
    expect(inserted[0].mode).toBe("TrackAll");
    expect(document.changeTrackingMode).toBe("TrackAll");
  });

  it("restores the user's mode even when the insertion fails", async () => {
    const { document } = install({ wordApi: "1.4", mode: "TrackMineOnly", failInsert: true });
    await expect(createWordHost().rewriteSelection("24 months")).rejects.toThrow("GeneralException");
    expect(document.changeTrackingMode).toBe("TrackMineOnly");
  });

  it("without WordApi 1.4 it replaces the selection and does not touch tracking", async () => {
    const { inserted, document } = install({ wordApi: "1.3", mode: "Off" });
    const host = createWordHost();
    expect(host.canTrackChanges).toBe(false);
    expect(await host.rewriteSelection("24 months")).toEqual({ tracked: false });
    // The mode was never loaded (so never read) nor assigned.
    expect(inserted).toEqual([{ text: "24 months", where: "Replace", mode: "Error, property was not loaded" }]);
    expect(document.changeTrackingMode).toBe("Error, property was not loaded");
  });

  it("refuses to rewrite an empty selection", async () => {
    const { inserted } = install({ wordApi: "1.4", selection: "  " });
    await expect(createWordHost().rewriteSelection("x")).rejects.toBeInstanceOf(HostError);
    expect(inserted).toEqual([]);
  });

  it("names the document for lineage", () => {
    install({ wordApi: "1.3" });
    expect(createWordHost().documentRef()).toBe("C:\\Docs\\Agreement.docx");
  });
});
