/**
 * A subject line for a draft reply from the headline summary (/v1/summarize with `length: "headline"`):
 * the checked headline where the faithfulness check sent one (a quote of the email when the model's line
 * was not supported), else what the model wrote; tidied into a subject (no "Subject:" label, no quotes
 * around it, no final full stop).
 */
import type { EmailIn, SummarizeRequest } from "../api/types";
import type { RunState } from "./run";

/** Outlook's own limit is far longer; a subject past this is not a subject. */
const MAX_SUBJECT = 120;

export function headlineRequest(email: EmailIn, sourceRef?: string | null): SummarizeRequest {
  return { email, length: "headline", client: "outlook", sourceRef: sourceRef ?? undefined };
}

export function tidySubject(line: string): string {
  let text = line.replace(/\s+/g, " ").trim();
  text = text.replace(/^(subject|headline)\s*:\s*/i, "");
  text = text.replace(/^["'“‘]+|["'”’]+$/g, "").trim();
  text = text.replace(/\.$/, "").trim();
  return text.length > MAX_SUBJECT ? `${text.slice(0, MAX_SUBJECT - 1).trimEnd()}…` : text;
}

/** The subject a finished headline run suggests, or null while it runs or when it gave nothing. */
export function subjectFrom(state: RunState): string | null {
  if (state.phase !== "done") return null;
  const line = state.grounded ? state.grounded.sentences.map((s) => s.text).join(" ") : state.text;
  const subject = tidySubject(line);
  return subject || null;
}
