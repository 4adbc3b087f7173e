/**
 * Endpoints the pane is built for that no server has yet; the pane checks the OpenAPI document before it
 * offers them (features.ts) and says "not available yet" otherwise. When one lands, its types appear in
 * schema.gen.ts: name them in types.ts and delete them here.
 */

/** POST /v1/rewrite (SSE: meta, token, done): the Word selection rewritten. No issue owns it yet. */
export interface RewriteRequest {
  text: string;
  instructions?: string;
  tone?: string;
  client?: "outlook" | "word";
  sourceRef?: string | null;
}
