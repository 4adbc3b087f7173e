/**
 * Structured results (extraction, triage, reviews) as rows the pane can show and edit. The extraction
 * contract is still being built, so this accepts the plausible shapes: `{fields: {...}}`, `{data: {...}}`,
 * `{values: {...}}` or the fields themselves, with an optional per-field confidence map.
 */

export interface FieldRow {
  name: string;
  /** The value as text: strings as they are, everything else as compact JSON. */
  value: string;
  raw: unknown;
  confidence?: number;
}

export interface StructuredResult {
  rows: FieldRow[];
  confidence?: number;
  reviewId?: string;
  needsReview: boolean;
  problems: string[];
}

const META_KEYS = new Set(["confidence", "fieldConfidence", "fieldConfidences", "confidences", "reviewId", "needsReview",
  "validation", "problems", "runId", "schema", "task", "label"]);

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

export function display(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join("; ");
  return JSON.stringify(value);
}

export function humanize(name: string): string {
  const spaced = name.replace(/_/g, " ").replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

function problemsOf(payload: Record<string, unknown>): string[] {
  const out: string[] = [];
  const collect = (v: unknown): void => {
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (asRecord(v)) {
      const r = v as Record<string, unknown>;
      if (r.ok === false || r.passed === false) out.push(display(r.message ?? r.rule ?? r.name ?? r));
      else if (Array.isArray(r.errors) || Array.isArray(r.failures)) collect(r.errors ?? r.failures);
    }
  };
  collect(payload.problems);
  collect(payload.validation);
  return out;
}

export function structured(payload: unknown): StructuredResult {
  const record = asRecord(payload) ?? {};
  const fields = asRecord(record.fields) ?? asRecord(record.data) ?? asRecord(record.values) ??
    Object.fromEntries(Object.entries(record).filter(([k]) => !META_KEYS.has(k)));
  const confidences = asRecord(record.fieldConfidence) ?? asRecord(record.fieldConfidences) ?? asRecord(record.confidences) ?? {};
  const rows = Object.entries(fields).map(([name, raw]) => {
    const c = confidences[name];
    return { name, raw, value: display(raw), ...(typeof c === "number" ? { confidence: c } : {}) };
  });
  const reviewId = typeof record.reviewId === "string" ? record.reviewId : undefined;
  return {
    rows,
    confidence: typeof record.confidence === "number" ? record.confidence : undefined,
    reviewId,
    needsReview: record.needsReview === true || reviewId !== undefined,
    problems: problemsOf(record),
  };
}

/** Turn edited text back into the field's type where that is unambiguous (numbers, JSON lists). */
export function parseEdited(text: string, original: unknown): unknown {
  if (typeof original === "number") {
    const n = Number(text.replace(/,/g, ""));
    return text.trim() !== "" && Number.isFinite(n) ? n : text;
  }
  if (typeof original === "boolean") return /^(true|yes|1)$/i.test(text.trim());
  if (original !== null && typeof original === "object") {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

export function percent(value: number | undefined): string {
  return value === undefined ? "" : `${Math.round(value * 100)}%`;
}
