import { describe, expect, it } from "vitest";
import type { Limit, MetaEvent, ProfileOut } from "../../src/api/types";
import {
  answerNotes, chainText, costText, limitColor, limitFraction, limitLabel, limitSpent, maskedSummary, piiText, priceText,
  ruleText, sortedRoutes, taskLabel, usageText,
} from "../../src/shared/models";
import { IDLE, runReducer, type RunAction } from "../../src/shared/run";

const meta = (extra: Partial<MetaEvent> = {}): MetaEvent => ({
  runId: "r1", task: "summarize", model: "gpt-4o-mini", backend: "openai", template: "summarize@v3", truncated: false,
  profile: "cloud", fallback: null, masked: null, cachedFrom: null, ...extra,
});

const profile = (extra: Partial<ProfileOut> = {}): ProfileOut => ({
  name: "cloud", backend: "openai", where: "gpt-4o-mini at https://api.example.com/v1", local: false, contextLength: 128000,
  priceInPer1k: 0, priceOutPer1k: 0, pii: "mask", jsonSchema: "response_format", logprobs: false, prefixCaching: false,
  state: "ready", error: null, breaker: null, apiKeyName: "openai", ...extra,
});

const limit = (extra: Partial<Limit> = {}): Limit => ({ scope: "profile", name: "cloud", period: "day", kind: "cost", limit: 5, spent: 1, ...extra });

describe("the line under an answer", () => {
  it("names the profile and its model, and nothing more when nothing else happened", () => {
    expect(answerNotes(meta())).toEqual({ answeredBy: "answered by cloud (gpt-4o-mini)", fallback: null, masked: null, cached: null });
  });

  it("names just the model when the server names no profile", () => {
    expect(answerNotes(meta({ profile: null, model: "SmolLM2" })).answeredBy).toBe("answered by SmolLM2");
  });

  it("says which profile failed first and why", () => {
    const notes = answerNotes(meta({ fallback: "model profile 'down': connection refused" }));
    expect(notes.fallback).toBe("fallback: model profile 'down': connection refused");
  });

  it("says what was masked in words, per category, in the server's order", () => {
    const notes = answerNotes(meta({ masked: { EMAIL: 1, PERSON: 2 } }));
    expect(notes.masked).toBe("masked before sending: 2 names, 1 email address");
    expect(maskedSummary({ ADDRESS: 2, CARD: 1, IBAN: 2, PHONE: 1, EMAIL: 3, PERSON: 1 }))
      .toBe("1 name, 3 email addresses, 1 phone number, 2 IBANs, 1 card number, 2 addresses");
  });

  it("says nothing about masking when nothing was masked, and still shows a category it does not know", () => {
    expect(answerNotes(meta({ masked: {} })).masked).toBeNull();
    expect(maskedSummary({ PERSON: 0 })).toBeNull();
    expect(maskedSummary(null)).toBeNull();
    expect(maskedSummary({ PASSPORT: 1, PERSON: 1 })).toBe("1 name, 1 passport");
  });

  it("says when the answer repeats a recorded one", () => {
    expect(answerNotes(meta({ cachedFrom: "r0" })).cached).toBe("repeated from an earlier answer");
  });

  it("describes the profile that answered after a fallback: the latest meta event wins", () => {
    const ev = (event: string, data: unknown): RunAction => ({ type: "event", event, data, at: 0 });
    const failed = meta({ runId: "r1", profile: "down", model: "gpt-x" });
    const answered = meta({ runId: "r2", fallback: "model profile 'down': connection refused", masked: { PERSON: 1 } });
    const state = [{ type: "start", at: 0 } as RunAction, ev("meta", failed), ev("meta", answered), ev("token", { text: "Hi" }), ev("done", { runId: "r2" })]
      .reduce(runReducer, IDLE);
    expect(state.meta?.runId).toBe("r2");
    const notes = answerNotes(state.meta!);
    expect(notes.answeredBy).toBe("answered by cloud (gpt-4o-mini)");
    expect(notes.fallback).toContain("'down'");
    expect(notes.masked).toBe("masked before sending: 1 name");
  });
});

describe("Settings → Models", () => {
  it("says what a remote profile does with personal data, and nothing for a local one", () => {
    expect(piiText(profile({ pii: "mask" }))).toBe("Personal data is masked before it is sent");
    expect(piiText(profile({ pii: "block" }))).toBe("Requests with personal data are not sent");
    expect(piiText(profile({ pii: "allow" }))).toBe("Personal data is sent as it is");
    expect(piiText(profile({ local: true, pii: "mask" }))).toBeNull();
  });

  it("shows prices only where there are some, small ones to four decimals", () => {
    expect(priceText(profile())).toBeNull();
    expect(priceText(profile({ priceInPer1k: 0.15, priceOutPer1k: 0.6 }))).toBe("0.15 in, 0.60 out per 1,000 tokens");
    expect(costText(0.00042)).toBe("0.0004");
    expect(costText(1234.5)).toBe("1,234.50");
  });

  it("lists the pane's tasks first, in its own words, and the default route last", () => {
    const routes = ["default", "zzz_custom", "rewrite", "summarize"].map((task) => ({ task, use: ["embedded"], rules: [] }));
    expect(sortedRoutes(routes).map((r) => r.task)).toEqual(["summarize", "rewrite", "zzz_custom", "default"]);
    expect(taskLabel("draft_reply")).toBe("Reply drafts");
    expect(taskLabel("default")).toBe("Every other task");
    expect(taskLabel("triage_mail")).toBe("Triage mail");
    expect(taskLabel("workflow.summarize")).toBe("Summaries in workflows");
  });

  it("shows a route as primary then fallbacks, and its rules in words", () => {
    expect(chainText(["cloud", "gpu", "embedded"])).toBe("cloud → gpu → embedded");
    expect(ruleText({ use: ["big"], input_over: 6000, sensitive: null })).toBe("When the input is over 6,000 tokens: big");
    expect(ruleText({ use: ["embedded"], input_over: null, sensitive: true })).toBe("When the request is marked sensitive: embedded");
    expect(ruleText({ use: ["a", "b"], input_over: 100, sensitive: false }))
      .toBe("When the input is over 100 tokens and the request is not marked sensitive: a → b");
  });

  it("shows a budget as spent of limit, a bar that fills, and a colour that warns near the limit", () => {
    expect(limitLabel(limit())).toBe("cloud, today's cost");
    expect(limitLabel(limit({ scope: "task", name: "summarize", period: "month", kind: "tokens" }))).toBe("Summaries, this month's tokens");
    expect(limitSpent(limit())).toBe("1.00 of 5.00");
    expect(limitSpent(limit({ kind: "tokens", limit: 100000, spent: 12345.4 }))).toBe("12,345 of 100,000 tokens");
    expect(limitFraction(limit())).toBeCloseTo(0.2);
    expect(limitFraction(limit({ spent: 7 }))).toBe(1);
    expect(limitFraction(limit({ limit: 0, spent: 0 }))).toBe(1);
    expect([1, 4, 5].map((spent) => limitColor(limit({ spent })))).toEqual(["brand", "warning", "error"]);
  });

  it("shows a profile's use for a task, with its cost when there is one", () => {
    const line = { profile: "cloud", task: "summarize", runs: 3, tokensIn: 1000, tokensOut: 234, cost: 0.0123 };
    expect(usageText(line)).toBe("3 requests · 1,234 tokens · cost 0.0123");
    expect(usageText({ ...line, runs: 1, cost: 0 })).toBe("1 request · 1,234 tokens");
  });
});
