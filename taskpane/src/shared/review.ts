/**
 * A review as a person works through the queue, fast: every field prefilled to be corrected in place, the
 * source beside it, and the keyboard (Enter accepts, J and K move between items, E edits). The decision is
 * an accept when nothing was changed and an edit of exactly the changed fields otherwise, and it says
 * when the review was opened, so the server can report the time from open to decision. Pure, so tested
 * without a browser.
 */
import type { Person, ReviewDecision } from "../api/types";
import { editable, parseEdited, type FieldRow } from "./result";

export type ReviewKey = "accept" | "next" | "previous" | "edit";

/** The parts of a KeyboardEvent a review key depends on. */
export interface KeyPress {
  key: string;
  target: EventTarget | null;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
}

function isTextField(target: EventTarget | null): boolean {
  const el = target as { tagName?: string; isContentEditable?: boolean } | null;
  const tag = el?.tagName?.toUpperCase();
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el?.isContentEditable === true;
}

function isControl(target: EventTarget | null): boolean {
  const el = target as { tagName?: string; getAttribute?: (name: string) => string | null } | null;
  const tag = el?.tagName?.toUpperCase();
  return tag === "BUTTON" || tag === "A" || el?.getAttribute?.("role") === "button";
}

/** What a key does in the review queue, or null for the page to handle it as usual: letters typed into a
 * field stay text, Enter on a button presses that button, Enter in a multi-line field is a new line. */
export function reviewKey(press: KeyPress): ReviewKey | null {
  if (press.ctrlKey || press.metaKey || press.altKey) return null;
  const inField = isTextField(press.target);
  if (press.key === "Enter") {
    const tag = (press.target as { tagName?: string } | null)?.tagName?.toUpperCase();
    return tag === "TEXTAREA" || tag === "SELECT" || isControl(press.target) ? null : "accept";
  }
  if (inField) return null;
  switch (press.key.toLowerCase()) {
    case "j":
      return "next";
    case "k":
      return "previous";
    case "e":
      return "edit";
    default:
      return null;
  }
}

/** The item J or K moves to: within the queue, staying put at either end. */
export function moveIndex(current: number, count: number, key: "next" | "previous"): number {
  if (count === 0) return 0;
  return Math.min(count - 1, Math.max(0, current + (key === "next" ? 1 : -1)));
}

/** The fields as the review opens: each row's proposed value, as the reviewer edits it. */
export function prefilledValues(rows: FieldRow[]): Record<string, string> {
  return Object.fromEntries(rows.map((r) => [r.name, editable(r.raw)]));
}

/** The fields the reviewer changed, in their types. */
export function changedFields(rows: FieldRow[], values: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(rows
    .filter((r) => values[r.name] !== undefined && values[r.name] !== editable(r.raw))
    .map((r) => [r.name, parseEdited(values[r.name], r.raw)]));
}

/** Accept when nothing was changed, else an edit of what was; with when the review was opened. */
export function decisionFor(rows: FieldRow[], values: Record<string, string>, reviewer: Person, openedAt: Date): ReviewDecision {
  const fields = changedFields(rows, values);
  const opened = openedAt.toISOString();
  return Object.keys(fields).length === 0
    ? { decision: "accept", reviewer, openedAt: opened }
    : { decision: "edit", fields, reviewer, openedAt: opened };
}

/** The text a pending review carries (`sourceText` on GET /v1/reviews: the server keeps it with the item
 * until it is decided), or null where it has none (decided, or queued before the server kept it). */
export function queuedSourceOf(review: { sourceText?: string | null }): string | null {
  const text = review.sourceText;
  return typeof text === "string" && text.trim() ? text : null;
}

/** The text a review's run read, from its lineage record (GET /v1/runs/{id}): kept only where the server
 * retains inputs (`retain_inputs`); null otherwise. The fallback where the review carries none. */
export function sourceTextOf(run: unknown): string | null {
  const input = (run as { input?: unknown } | null)?.input;
  if (!input || typeof input !== "object") return null;
  const record = input as { text?: unknown; email?: { body?: unknown } };
  if (typeof record.text === "string" && record.text.trim()) return record.text;
  if (typeof record.email?.body === "string" && record.email.body.trim()) return record.email.body;
  return null;
}
