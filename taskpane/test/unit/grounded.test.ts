import { describe, expect, it } from "vitest";
import type { GroundedEvent } from "../../src/api/types";
import { groundedView, removedNote } from "../../src/shared/grounded";
import { IDLE, runReducer, type RunAction } from "../../src/shared/run";

const source = (index: number, text: string, part = 0) => ({ index, part, start: 0, end: text.length, text });

const summary: GroundedEvent = {
  runId: "r1",
  task: "summarize",
  sentences: [
    { text: "Carol needs the Q3 figures by Tuesday.", kind: "generated", score: 0.8, sourceSentence: source(1, "I need the Q3 sales figures from your team by Tuesday evening.") },
    { text: "Lisbon is still checking two invoices.", kind: "quoted", score: 0.9, sourceSentence: source(5, "Lisbon is still checking two invoices.", 1) },
  ],
  dropped: [{ text: "Marco will update the plan by Wednesday.", reason: "no source sentence has Marco", replacedBy: null }],
  written: 3,
  supported: 1,
  fallback: false,
  checkMs: 12,
};

describe("groundedView", () => {
  it("keeps each sentence's kind and its source sentence, and says what was removed", () => {
    const view = groundedView(summary);
    expect(view.lines).toEqual([
      { text: "Carol needs the Q3 figures by Tuesday.", quoted: false, source: "I need the Q3 sales figures from your team by Tuesday evening.", where: "the email", cite: null },
      { text: "Lisbon is still checking two invoices.", quoted: true, source: "Lisbon is still checking two invoices.", where: "earlier message 1", cite: null },
    ]);
    expect(view.removed).toBe("1 sentence removed: not supported by the email");
    expect(view.fallback).toBeNull();
  });

  it("names an answer's passages, and a fallback replaces the removed note", () => {
    const ask = { ...summary, task: "ask", fallback: true, dropped: [...summary.dropped, ...summary.dropped] };
    const view = groundedView(ask);
    expect(view.lines[1].where).toBe("passage [1]");
    expect(view.lines.map((l) => l.cite)).toEqual([0, 1]); // a quote is cited with its passage
    const cited = { ...ask, sentences: [{ ...ask.sentences[0], text: "Ninety days [2]." }] };
    expect(groundedView(cited).lines[0].cite).toBeNull(); // the model's own citation stays as written
    expect(view.removed).toBeNull();
    expect(view.fallback).toMatch(/passages' sentences that best match the question/);
    expect(groundedView({ ...ask, fallback: false }).removed).toBe("2 sentences removed: not supported by the cited passages");
  });

  it("tells a dropped sentence from one replaced by a quote, and says nothing when nothing was removed", () => {
    const replaced = { text: "The meeting moved to Friday.", reason: "not in the source sentence it matches: fri", replacedBy: 1 };
    expect(removedNote({ task: "summarize", dropped: [...summary.dropped, replaced] }))
      .toBe("1 sentence removed: not supported by the email; 1 replaced by a quote of the email");
    expect(removedNote({ task: "ask", dropped: [replaced, replaced] })).toBe("2 replaced by quotes of the cited passages");
    expect(removedNote({ task: "summarize", dropped: [] })).toBeNull();
    expect(groundedView({ ...summary, dropped: [] }).removed).toBeNull();
  });
});

describe("runReducer: grounded", () => {
  const ev = (event: string, data: unknown): RunAction => ({ type: "event", event, data, at: 0 });
  it("keeps the grounded event beside the streamed text, ignoring a malformed one", () => {
    const state = [{ type: "start", at: 0 } as RunAction, ev("token", { text: "Marco will" }), ev("grounded", { nope: 1 }), ev("grounded", summary), ev("done", { runId: "r1" })]
      .reduce(runReducer, IDLE);
    expect(state.text).toBe("Marco will");
    expect(state.grounded).toEqual(summary);
    expect(state.phase).toBe("done");
  });
});
