/**
 * What the faithfulness check kept (the `grounded` event of /v1/summarize and /v1/ask), as the pane shows
 * it: the checked sentences replace the streamed text, each either the model's own words that the source
 * supports or a quote of the source; a line says what was removed and why. Pure, so the wording is tested
 * without a browser.
 */
import type { GroundedEvent } from "../api/types";

export interface GroundedLine {
  text: string;
  quoted: boolean;
  /** The source sentence that supports or is quoted, verbatim; null when the server names none. */
  source: string | null;
  /** Where that sentence is: "the email", "earlier message 2", "passage [3]". */
  where: string | null;
  /** An answer's sentence that names no source itself (a quote): the passage it comes from, cited. */
  cite: number | null;
}

export interface GroundedView {
  lines: GroundedLine[];
  /** "1 sentence removed: not supported by the email; 1 replaced by a quote of the email", or null. */
  removed: string | null;
  /** Said when the model's answer was replaced by the source's key sentences. */
  fallback: string | null;
}

/** What the source is called for a task: a summary's email (or text), an answer's cited passages. */
function sourceName(task: string): string {
  return task === "ask" ? "the cited passages" : "the email";
}

function where(task: string, part: number): string {
  if (task === "ask") return `passage [${part}]`;
  return part === 0 ? "the email" : `earlier message ${part}`;
}

/** What the check took out: sentences dropped, and those replaced by the source sentence they paraphrase. */
export function removedNote(event: Pick<GroundedEvent, "dropped" | "task">): string | null {
  const removed = event.dropped.filter((d) => d.replacedBy == null).length;
  const replaced = event.dropped.length - removed;
  const notes = [];
  if (removed > 0) notes.push(`${removed} sentence${removed === 1 ? "" : "s"} removed: not supported by ${sourceName(event.task)}`);
  if (replaced > 0) notes.push(`${replaced} replaced by ${replaced === 1 ? "a quote" : "quotes"} of ${sourceName(event.task)}`);
  return notes.length ? notes.join("; ") : null;
}

export function groundedView(event: GroundedEvent): GroundedView {
  const lines = event.sentences.map((s) => ({
    text: s.text,
    quoted: s.kind === "quoted",
    source: s.sourceSentence?.text ?? null,
    where: s.sourceSentence ? where(event.task, s.sourceSentence.part) : null,
    cite: event.task === "ask" && s.sourceSentence && !/\[\d/.test(s.text) ? s.sourceSentence.part : null,
  }));
  const fallback = event.fallback
    ? event.task === "ask"
      ? "The answer was not supported by the passages it cites: these are the passages' sentences that best match the question."
      : "Too little of the model's summary was supported: these are the email's key sentences."
    : null;
  // Under a fallback every written sentence is replaced; the note above says so already.
  return { lines, removed: event.fallback ? null : removedNote(event), fallback };
}
