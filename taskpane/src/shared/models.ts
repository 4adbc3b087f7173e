/**
 * Model profiles, routes, usage and an answer's provenance in words, for Settings → Models and the line
 * under every answer. Pure functions over the wire types (GET /v1/models, GET /v1/usage, the `meta`
 * event), so what the user reads is tested without a browser.
 *
 * Settings are read-only: IT changes profiles and routes on the computer (`deskpilot models use`), and
 * the pane shows what the server will do: which profile answers each task and which take over when it
 * fails, what a remote profile does with personal data, and how much of each budget is spent.
 */
import type { Limit, MetaEvent, ProfileOut, RouteOut, UsageLine } from "../api/types";
import { humanize } from "./result";

/** Each PII category the server masks (inference/pii.py CATEGORIES), as one and as many, in that order. */
const MASKED_WORDS: Record<string, readonly [string, string]> = {
  PERSON: ["name", "names"],
  EMAIL: ["email address", "email addresses"],
  PHONE: ["phone number", "phone numbers"],
  IBAN: ["IBAN", "IBANs"],
  CARD: ["card number", "card numbers"],
  ADDRESS: ["address", "addresses"],
};

/** "2 names, 1 email address": what was masked before the request left the computer, or null if nothing. */
export function maskedSummary(masked: Record<string, number> | null | undefined): string | null {
  const known = Object.keys(MASKED_WORDS);
  // Known categories in the server's order; one it adds later still shows, in plain letters, after them.
  const order = (c: string) => (known.includes(c) ? known.indexOf(c) : known.length);
  const parts = Object.entries(masked ?? {})
    .filter(([, count]) => count > 0)
    .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
    .map(([category, count]) => {
      const [one, many] = MASKED_WORDS[category] ?? [category.toLowerCase(), category.toLowerCase()];
      return `${count} ${count === 1 ? one : many}`;
    });
  return parts.length ? parts.join(", ") : null;
}

/** The notes under an answer: who answered, and anything about how that the user should know. */
export interface AnswerNotes {
  /** "answered by cloud (gpt-4o-mini)"; just the model when the server names no profile. */
  answeredBy: string;
  /** "fallback: model profile 'down': connection refused": the profiles that failed first, and why. */
  fallback: string | null;
  /** "masked before sending: 2 names, 1 email address". */
  masked: string | null;
  /** Set when the answer repeats a recorded one instead of asking the model again. */
  cached: string | null;
}

/** The notes for the latest `meta` event (after a fallback, the one of the profile that answered). */
export function answerNotes(meta: MetaEvent): AnswerNotes {
  const masked = maskedSummary(meta.masked);
  return {
    answeredBy: meta.profile ? `answered by ${meta.profile} (${meta.model})` : `answered by ${meta.model}`,
    fallback: meta.fallback ? `fallback: ${meta.fallback}` : null,
    masked: masked ? `masked before sending: ${masked}` : null,
    cached: meta.cachedFrom ? "repeated from an earlier answer" : null,
  };
}

const TASKS: Record<string, string> = {
  summarize: "Summaries",
  draft_reply: "Reply drafts",
  rewrite: "Rewrites",
  ask: "Questions on documents",
  extract: "Extraction",
  classify: "Classification",
  default: "Every other task",
};

/** A route's task as the pane's buttons name it; a task the pane does not know, from its name. A
 * workflow step's own route (`workflow.TASK`) says so. */
export function taskLabel(task: string): string {
  if (task.startsWith("workflow.")) return `${taskLabel(task.slice("workflow.".length))} in workflows`;
  return TASKS[task] ?? humanize(task);
}

/** The routes in a stable order: the pane's tasks first, as listed above, then others, "default" last. */
export function sortedRoutes(routes: RouteOut[]): RouteOut[] {
  const known = Object.keys(TASKS);
  const rank = (r: RouteOut) => (r.task === "default" ? known.length + 1 : known.includes(r.task) ? known.indexOf(r.task) : known.length);
  return [...routes].sort((a, b) => rank(a) - rank(b) || a.task.localeCompare(b.task));
}

/** "cloud → local-gpu → embedded": the order the server tries the profiles in, the primary first. */
export function chainText(use: readonly string[]): string {
  return use.join(" → ");
}

/** A route rule (`[[routes.TASK.rules]]`: other profiles for long or sensitive input) in words. */
export function ruleText(rule: Record<string, unknown>): string {
  const use = Array.isArray(rule.use) ? rule.use.map(String) : [];
  const when: string[] = [];
  if (typeof rule.input_over === "number") when.push(`the input is over ${rule.input_over.toLocaleString("en-US")} tokens`);
  if (rule.sensitive === true) when.push("the request is marked sensitive");
  if (rule.sensitive === false) when.push("the request is not marked sensitive");
  return `${when.length ? `When ${when.join(" and ")}` : "Always"}: ${chainText(use)}`;
}

const PII_POLICY: Record<string, string> = {
  mask: "Personal data is masked before it is sent",
  block: "Requests with personal data are not sent",
  allow: "Personal data is sent as it is",
};

/** What a remote profile does with personal data; null for a local one (nothing leaves the computer). */
export function piiText(profile: ProfileOut): string | null {
  if (profile.local) return null;
  return PII_POLICY[profile.pii] ?? `Personal data: ${profile.pii}`;
}

const STATES: Record<ProfileOut["state"], string> = {
  not_loaded: "not started yet",
  loading: "loading",
  ready: "ready",
  failed: "failed",
};

export function stateText(state: ProfileOut["state"]): string {
  return STATES[state] ?? state;
}

/** A cost in the organisation's currency (the server does not say which): at least 2 decimals, small
 * amounts to 4, so a cent's fraction spent on a short remote answer does not read as nothing. */
export function costText(value: number): string {
  return value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

/** "0.15 in, 0.60 out per 1,000 tokens", or null for a profile that costs nothing per token. */
export function priceText(profile: ProfileOut): string | null {
  if (!profile.priceInPer1k && !profile.priceOutPer1k) return null;
  return `${costText(profile.priceInPer1k)} in, ${costText(profile.priceOutPer1k)} out per 1,000 tokens`;
}

/** "Summaries, today's cost": what one budget limits. */
export function limitLabel(limit: Limit): string {
  const who = limit.scope === "task" ? taskLabel(limit.name) : limit.name;
  const period = limit.period === "day" ? "today's" : "this month's";
  return `${who}, ${period} ${limit.kind === "tokens" ? "tokens" : "cost"}`;
}

/** "0.42 of 5.00" or "12,000 of 100,000 tokens". */
export function limitSpent(limit: Limit): string {
  if (limit.kind === "tokens") {
    const n = (x: number) => Math.round(x).toLocaleString("en-US");
    return `${n(limit.spent)} of ${n(limit.limit)} tokens`;
  }
  return `${costText(limit.spent)} of ${costText(limit.limit)}`;
}

/** How full a budget is, 0..1 for the progress bar (a budget of 0 is full at once). */
export function limitFraction(limit: Limit): number {
  if (limit.limit <= 0) return 1;
  return Math.min(1, Math.max(0, limit.spent / limit.limit));
}

/** The bar's colour: the router stops using a profile at its limit, so near and at it are worth a glance. */
export function limitColor(limit: Limit): "brand" | "warning" | "error" {
  const used = limitFraction(limit);
  return used >= 1 ? "error" : used >= 0.8 ? "warning" : "brand";
}

/** "3 requests · 1,234 tokens · cost 0.02": one profile's use for one task (every attempt counts, a failed
 * one and one answered from the result cache too, as lineage records them); cost only where there is one. */
export function usageText(line: UsageLine): string {
  const parts = [
    `${line.runs.toLocaleString("en-US")} ${line.runs === 1 ? "request" : "requests"}`,
    `${(line.tokensIn + line.tokensOut).toLocaleString("en-US")} tokens`,
  ];
  if (line.cost > 0) parts.push(`cost ${costText(line.cost)}`);
  return parts.join(" · ");
}
