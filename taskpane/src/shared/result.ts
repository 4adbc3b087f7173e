/**
 * Structured results (an extraction's `result` event, a triage answer, a review item) as rows the pane can
 * show and edit: one row per top-level field of `data`, with the lowest confidence of the values under it
 * (`fields` is keyed by value path, "lineItems[0].amount"), the rule checks that failed, and whether the
 * result went to the review queue.
 */

export interface FieldRow {
  name: string;
  /** The value as text: lists of records one per line, their values joined with " · ". */
  value: string;
  raw: unknown;
  confidence?: number;
}

export interface StructuredResult {
  rows: FieldRow[];
  label?: string;
  confidence?: number;
  reviewId?: string;
  reasons: string[];
  problems: string[];
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

export function display(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) {
    return value.map((v) => (asRecord(v) ? Object.values(v as object).filter((x) => x !== null && x !== "").map(display).join(" · ") : display(v)))
      .join("\n");
  }
  const record = asRecord(value);
  return record ? Object.entries(record).filter(([, v]) => v !== null && v !== "").map(([k, v]) => `${humanize(k)}: ${display(v)}`).join(", ") : "";
}

export function humanize(name: string): string {
  const spaced = name.replace(/_/g, " ").replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

/** The lowest confidence of `name` and every value path under it. */
function confidenceOf(name: string, fields: Record<string, unknown>): number | undefined {
  let lowest: number | undefined;
  for (const [path, info] of Object.entries(fields)) {
    if (path !== name && !path.startsWith(`${name}[`) && !path.startsWith(`${name}.`)) continue;
    const c = typeof info === "number" ? info : (asRecord(info)?.confidence as number | undefined);
    if (typeof c === "number") lowest = lowest === undefined ? c : Math.min(lowest, c);
  }
  return lowest;
}

function problemsOf(validation: unknown): string[] {
  const v = asRecord(validation);
  if (!v) return [];
  const rules = Array.isArray(v.rules) ? v.rules : [];
  const failed = rules.filter((r) => asRecord(r)?.status === "fail").map((r) => String(asRecord(r)?.message ?? asRecord(r)?.rule));
  const problems = Array.isArray(v.problems) ? v.problems.map(String) : [];
  return [...problems, ...failed];
}

export function structured(payload: unknown): StructuredResult {
  const record = asRecord(payload) ?? {};
  const data = asRecord(record.data) ?? {};
  const fields = asRecord(record.fields) ?? {};
  const review = asRecord(record.review);
  const rows = Object.entries(data).map(([name, raw]) => {
    const c = confidenceOf(name, fields);
    return { name, raw, value: display(raw), ...(c !== undefined ? { confidence: c } : {}) };
  });
  return {
    rows,
    label: typeof record.label === "string" ? record.label : undefined,
    confidence: typeof record.confidence === "number" ? record.confidence : undefined,
    reviewId: typeof review?.id === "string" ? review.id : undefined,
    reasons: Array.isArray(review?.reasons) ? review.reasons.map(String) : [],
    problems: problemsOf(record.validation),
  };
}

/** Edited text back into the field's type where that is unambiguous: numbers, booleans, JSON lists. */
export function parseEdited(text: string, original: unknown): unknown {
  if (typeof original === "number") {
    const n = Number(text.replace(/,/g, ""));
    return text.trim() !== "" && Number.isFinite(n) ? n : text;
  }
  if (typeof original === "boolean") return /^(true|yes|1)$/i.test(text.trim());
  if (original === null && text.trim() === "") return null;
  if (original !== null && typeof original === "object") {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** The value as the reviewer edits it: text for scalars, JSON for lists and records (edited whole). */
export function editable(value: unknown): string {
  return value !== null && typeof value === "object" ? JSON.stringify(value) : display(value);
}

export function percent(value: number | undefined | null): string {
  return value === undefined || value === null ? "" : `${Math.round(value * 100)}%`;
}
