import { describe, expect, it } from "vitest";
import type { DriftReport, DriftSignal } from "../../src/api/types";
import { driftLines, driftWhat, taskName } from "../../src/shared/drift";

const NOW = new Date("2026-12-07T12:00:00Z");
const at = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000).toISOString();

const signal = (extra: Partial<DriftSignal>): DriftSignal => ({
  task: "summarize", signal: "input_psi", value: 1.2, threshold: 0.25, alarm: true, since: at(-180), at: at(-1),
  referenceN: 200, currentN: 100, ...extra,
});

const report = (alarms: DriftSignal[]): DriftReport => ({
  enabled: true, referenceSize: 200, windowSize: 100, checkEvery: 20, psiThreshold: 0.25, centroidThreshold: 0.1,
  rateThreshold: 0.15, clearRatio: 0.8, pending: 0, dropped: 0, signals: alarms, alarms, waiting: [],
});

describe("drift in words", () => {
  it("names tasks as the pane does", () => {
    expect(taskName("summarize")).toBe("summaries");
    expect(taskName("extract:invoice")).toBe("invoice extraction");
    expect(taskName("something_new")).toBe("something_new");
  });

  it("says what each signal means, with the direction of a rate", () => {
    expect(driftWhat(signal({ signal: "input_centroid" }))).toBe("what summaries are given looks different from before");
    expect(driftWhat(signal({ task: "classify", signal: "label_psi" }))).toBe("triage is choosing different labels than it used to");
    expect(driftWhat(signal({ task: "extract:invoice", signal: "confidence_mean", value: -0.35 })))
      .toBe("invoice extraction results are less confident than before (down 35 points)");
    expect(driftWhat(signal({ task: "extract:invoice", signal: "review_rate", value: 0.7 })))
      .toBe("more invoice extraction results go to review (up 70 points)");
    expect(driftWhat(signal({ task: "extract:invoice", signal: "null_rate:total", value: 0.4 })))
      .toBe('invoice extraction leaves "total" empty more often (up 40 points)');
  });

  it("makes one line of a task's two input signals, oldest drift first, with since when", () => {
    const lines = driftLines(report([
      signal({ signal: "input_psi", since: at(-180) }),
      signal({ signal: "input_centroid", since: at(-120) }),
      signal({ task: "classify", signal: "label_psi", since: at(-600) }),
    ]), NOW);
    expect(lines).toEqual([
      "Triage is choosing different labels than it used to (noticed 10 h ago).",
      "What summaries are given looks different from before (noticed 3 h ago).",
    ]);
  });

  it("has nothing to say when nothing is in alarm", () => {
    expect(driftLines(report([]), NOW)).toEqual([]);
  });
});
