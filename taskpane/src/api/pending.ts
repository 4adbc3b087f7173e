/**
 * Contracts of endpoints still being built (issue 3: extract, classify, reviews), written from their
 * issue text; /v1/rewrite has no owner yet. The pane checks the OpenAPI document before it uses one
 * (features.ts) and says "not available yet" otherwise. When an endpoint lands, its types appear in
 * schema.gen.ts: replace the matching type here with the generated one. Results are rendered generically
 * (shared/result.ts), so small differences in their shape do not break the pane.
 */
import type { EmailIn } from "./types";

/** POST /v1/extract (SSE: meta, progress, result, done). */
export interface ExtractRequest {
  schema: string;
  text?: string;
  email?: EmailIn;
  client?: "outlook" | "word";
  sourceRef?: string | null;
}

export interface ProgressEvent {
  stage?: string;
  message?: string;
  fraction?: number;
}

/** POST /v1/classify: triage into configurable labels. */
export interface ClassifyRequest {
  text?: string;
  email?: EmailIn;
  labels?: string[];
  client?: "outlook" | "word";
  sourceRef?: string | null;
}

export interface ClassifyOut {
  label: string;
  confidence?: number;
  runId?: string;
  scores?: Record<string, number>;
}

/** GET /v1/reviews, POST /v1/reviews/{id}. */
export interface Review {
  id: string;
  runId?: string;
  task?: string;
  schema?: string;
  fields?: Record<string, unknown>;
  confidence?: number;
  fieldConfidence?: Record<string, number>;
  reasons?: string[];
  status?: string;
  createdAt?: string;
}

export type ReviewDecision =
  | { decision: "accept"; reviewer?: string }
  | { decision: "edit"; fields: Record<string, unknown>; reviewer?: string }
  | { decision: "reject"; reviewer?: string; reason?: string };

/** POST /v1/rewrite (SSE: meta, token, done): the selection rewritten; no issue owns it yet. */
export interface RewriteRequest {
  text: string;
  instructions?: string;
  tone?: string;
  client?: "outlook" | "word";
  sourceRef?: string | null;
}
