/**
 * Which endpoints this server has, read from its OpenAPI document. Extraction, triage, reviews, ask,
 * index status, rewrite, actions, workflows and automations are being built while the pane ships: the
 * pane asks before it offers them, and treats a 404 from any of them the same way ("not available yet"),
 * so it works with older and newer servers.
 */
import type { Api } from "../api/http";

export const FEATURES = {
  prepare: "POST /v1/prepare",
  extract: "POST /v1/extract",
  classify: "POST /v1/classify",
  reviews: "GET /v1/reviews",
  review: "POST /v1/reviews/{}",
  ask: "POST /v1/ask",
  rewrite: "POST /v1/rewrite",
  indexStatus: "GET /v1/index/status",
  conversation: "GET /v1/mail/conversation/{}",
  actions: "GET /v1/actions",
  approve: "POST /v1/actions/{}/approve",
  reject: "POST /v1/actions/{}/reject",
  retry: "POST /v1/actions/{}/retry",
  workflows: "POST /v1/workflows",
  workflow: "GET /v1/workflows/{}",
  automations: "GET /v1/automations",
  automation: "PUT /v1/automations/{}",
} as const;

export type Feature = keyof typeof FEATURES;
export type Features = Record<Feature, boolean>;

export const NO_FEATURES: Features = Object.fromEntries(Object.keys(FEATURES).map((k) => [k, false])) as Features;

/** "POST /v1/reviews/{}" for every operation in the document (path parameters normalised to `{}`). */
export function operations(document: unknown): Set<string> {
  const found = new Set<string>();
  const paths = (document as { paths?: Record<string, Record<string, unknown>> })?.paths ?? {};
  for (const [path, item] of Object.entries(paths)) {
    const normalised = path.replace(/\{[^}]*\}/g, "{}").replace(/\/+$/, "");
    for (const method of Object.keys(item ?? {})) {
      if (/^(get|post|put|patch|delete)$/i.test(method)) found.add(`${method.toUpperCase()} ${normalised}`);
    }
  }
  return found;
}

export function featuresOf(document: unknown): Features {
  const ops = operations(document);
  return Object.fromEntries(Object.entries(FEATURES).map(([name, op]) => [name, ops.has(op)])) as Features;
}

export async function loadFeatures(api: Api, signal?: AbortSignal): Promise<Features> {
  return featuresOf(await api.get<unknown>("/openapi/openapi.json", signal));
}
