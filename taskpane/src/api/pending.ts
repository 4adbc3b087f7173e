/**
 * Endpoints that are in the server's working tree but not yet committed (issue 3: extract, classify,
 * reviews), mirrored from server/extraction_schemas.py and server/schemas.py as they stand; /v1/rewrite
 * has no owner yet and is written from the task pane's needs. They are not taken from schema.gen.ts on
 * purpose: a build from a checkout without those endpoints must still type-check. Once they are
 * committed, replace each type here with its generated twin (types.ts) and delete it from this file.
 * The pane checks the OpenAPI document before it offers any of them (features.ts).
 */
import type { EmailIn } from "./types";

/** POST /v1/extract (SSE: meta, progress, result, done). Built-in schemas: invoice, contract, email_actions, meeting_notes. */
export interface ExtractRequest {
  schema: string;
  text?: string;
  email?: EmailIn;
  client?: "outlook" | "word";
  sourceRef?: string | null;
}

export interface ProgressEvent {
  stage: "waiting" | "generating" | "checking";
  tokens?: number;
  maxTokens?: number;
  field?: string | null;
}

export interface FieldOut {
  confidence: number;
  crossCheck?: "agrees" | "disagrees" | "missed";
  failedRules?: string[];
  repaired?: boolean;
}

export interface ReviewRef {
  id: string;
  reasons: string[];
}

export interface ResultEvent {
  runId: string;
  task: string;
  schema: string | null;
  data: Record<string, unknown>;
  confidence: number;
  /** Per value path ("lineItems[0].amount"). */
  fields: Record<string, FieldOut>;
  validation: { valid: boolean; repaired: boolean; problems?: string[]; rules?: { rule: string; status: "pass" | "fail"; message: string }[] };
  review?: ReviewRef | null;
}

/** POST /v1/classify (JSON). */
export interface ClassifyRequest {
  text?: string;
  email?: EmailIn;
  labels?: string[];
  client?: "outlook" | "word";
  sourceRef?: string | null;
}

export interface ClassifyOut {
  runId: string;
  label: string;
  confidence: number;
  labels: string[];
  review?: ReviewRef | null;
}

/** GET /v1/reviews ({reviews: Review[]}), POST /v1/reviews/{id}. */
export interface Review {
  id: string;
  runId: string;
  createdAt: string;
  status: "pending" | "accepted" | "edited" | "rejected";
  task: string;
  templateId: string;
  modelId: string;
  reasons: string[];
  confidence: number | null;
  /** The result as proposed. */
  data: Record<string, unknown>;
  /** Per-field confidence, as in the `result` event. */
  fields: Record<string, FieldOut>;
}

export interface ReviewDecision {
  decision: "accept" | "edit" | "reject";
  reviewer: string;
  /** Only with "edit": the top-level fields that changed. */
  fields?: Record<string, unknown>;
  note?: string;
}

/** POST /v1/rewrite (SSE: meta, token, done): the selection rewritten; no issue owns it yet. */
export interface RewriteRequest {
  text: string;
  instructions?: string;
  tone?: string;
  client?: "outlook" | "word";
  sourceRef?: string | null;
}
