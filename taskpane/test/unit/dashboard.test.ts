import { describe, expect, it } from "vitest";
import { niceMax } from "../../src/dashboard/charts";
import type { Dashboard } from "../../src/dashboard/data";
import {
  costTotals,
  driftSeries,
  eventSummary,
  formatMs,
  formatNumber,
  formatShare,
  formatTime,
  latencySeries,
  latestDrift,
  perProfile,
  qualitySeries,
  reportData,
  shortHash,
  verifiedHeads,
} from "../../src/dashboard/data";

const slo = { name: "s", description: "d", objective: 0.95, total: 0, good: 0, value: null, budgetTotal: 0, budgetSpent: 0, budgetRemaining: null };
const DATA: Dashboard = {
  generatedAt: "2026-12-07T12:00:00.000000Z",
  since: "2026-12-07T00:00:00.000000Z",
  until: "2026-12-07T12:00:00.000000Z",
  bucket: "hour",
  latency: [
    { at: "2026-12-07T09:00:00Z", runs: 2, ttftP50Ms: 40, ttftP95Ms: 90, totalP50Ms: 400, totalP95Ms: 900 },
    { at: "2026-12-07T10:00:00Z", runs: 1, ttftP50Ms: null, ttftP95Ms: null, totalP50Ms: 300, totalP95Ms: 300 },
  ],
  cost: [
    { at: "2026-12-07T09:00:00Z", profile: "remote", runs: 1, tokensIn: 10, tokensOut: 5, cost: 0.5 },
    { at: "2026-12-07T09:00:00Z", profile: "embedded", runs: 2, tokensIn: 20, tokensOut: 8, cost: 0 },
    { at: "2026-12-07T10:00:00Z", profile: "remote", runs: 1, tokensIn: 12, tokensOut: 6, cost: 0.25 },
  ],
  quality: [{ at: "2026-12-07T09:00:00Z", structured: 4, queued: 1, reviewRate: 0.25, decided: 0, overridden: 0, overrideRate: null }],
  slo: { since: "", until: "", workflowAvailability: slo, syncLatency: slo },
  driftChecks: [
    { at: "2026-12-07T09:10:00Z", task: "extract:invoice", signal: "input_psi", value: 0.1, threshold: 0.2, alarm: false, referenceN: 200, currentN: 50 },
    { at: "2026-12-07T10:10:00Z", task: "extract:invoice", signal: "input_psi", value: 0.3, threshold: 0.2, alarm: true, referenceN: 200, currentN: 50 },
  ],
  driftEvents: [],
  chain: {
    heads: [
      { chain: "runs", rows: 3, headHash: "aaa" },
      { chain: "reviews", rows: 1, headHash: "bbb" },
      { chain: "audit_events", rows: 2, headHash: "ev2" },
      { chain: "action_log", rows: 0, headHash: null },
    ],
    lastVerification: { at: "2026-12-07T11:00:00Z", kind: "audit.verify", actor: "dashboard", hash: "ev2", details: { ok: true, head_hash: "aaa", reviews_head_hash: "old", events_head_hash: "ev1" } },
  },
  governance: [],
};

describe("the charts' data", () => {
  it("draws a latency point only where the bucket has a value", () => {
    const [ttft50, , total50] = latencySeries(DATA);
    expect(ttft50.points).toEqual([{ t: Date.parse("2026-12-07T09:00:00Z"), v: 40 }]);
    expect(total50.points.map((p) => p.v)).toEqual([400, 300]);
  });

  it("splits cost by profile, sorted by name, and totals it", () => {
    expect(perProfile(DATA, (p) => p.cost).map((s) => [s.name, s.points.map((p) => p.v)])).toEqual([
      ["embedded", [0]],
      ["remote", [0.5, 0.25]],
    ]);
    expect(costTotals(DATA).get("remote")).toEqual({ runs: 2, cost: 0.75, tokensIn: 22, tokensOut: 11 });
  });

  it("leaves out a rate with nothing to divide by", () => {
    const [review, override] = qualitySeries(DATA);
    expect(review.points.map((p) => p.v)).toEqual([0.25]);
    expect(override.points).toEqual([]);
  });

  it("draws the drift signals that moved, as a share of their threshold, with the threshold at 1", () => {
    const flat = { at: "2026-12-07T10:10:00Z", task: "extract:invoice", signal: "null_rate:vendor", value: 0, threshold: 0.15, alarm: false, referenceN: 20, currentN: 20 };
    const series = driftSeries([...DATA.driftChecks, flat]);
    expect(series.map((s) => [s.name, s.dashed, s.points.map((p) => Number(p.v.toFixed(6)))])).toEqual([
      ["extract:invoice · input_psi", false, [0.5, 1.5]],
      ["threshold", true, [1, 1]],
    ]);
    expect(driftSeries([flat])).toEqual([]);
  });

  it("lists each signal's latest check, alarms first", () => {
    const other = { at: "2026-12-07T08:00:00Z", task: "classify", signal: "label_psi", value: 0.2, threshold: 0.25, alarm: false, referenceN: 20, currentN: 20 };
    expect(latestDrift([other, ...DATA.driftChecks]).map((c) => [c.signal, c.value])).toEqual([
      ["input_psi", 0.3],
      ["label_psi", 0.2],
    ]);
  });

  it("says which chains grew since the last verification, not counting the verification's own record", () => {
    expect(Object.fromEntries(verifiedHeads(DATA))).toEqual({ runs: true, reviews: false, audit_events: true, action_log: true });
    const later = { ...DATA, chain: { ...DATA.chain, heads: [{ chain: "audit_events", rows: 3, headHash: "ev3" }] } };
    expect(Object.fromEntries(verifiedHeads(later))).toEqual({ audit_events: false });
  });

  it("formats for people and rounds the axis up", () => {
    expect([formatMs(41.6), formatMs(2.54), formatMs(0), formatMs(1530), formatMs(null)]).toEqual(["42 ms", "2.5 ms", "0 ms", "1.5 s", "–"]);
    expect([formatNumber(37.5), formatNumber(1200), formatNumber(0.125)]).toEqual(["37.5", "1,200", "0.13"]);
    expect([shortHash("sha256:0123456789abcdef"), shortHash(null)]).toEqual(["0123456789ab…", "(none)"]);
    expect(eventSummary({ signal: "null_rate:currency", value: 0.5, alarm: true, window: { from: "x" }, note: null })).toBe(
      "signal=null_rate:currency, value=0.5, alarm=true, note=null",
    );
    expect(eventSummary({ subject: "sha256:ab", counts: { runs: 3, reviews: 0, documents: 2, dry_run: false }, purged: {} })).toBe(
      "subject=sha256:ab, runs=3, documents=2",
    );
    expect(eventSummary({ counts: { runs: 0 }, cutoffs: {} })).toBe("removed=nothing");
    expect([formatShare(0.5), formatShare(null)]).toEqual(["50.0%", "–"]);
    expect([formatTime("2026-12-07T09:00:00Z"), formatTime("2026-12-07T09:00:00Z", "day")]).toEqual(["2026-12-07 09:00", "2026-12-07"]);
    expect([niceMax(0), niceMax(3), niceMax(0.35), niceMax(1000)]).toEqual([1, 5, 0.5, 1000]);
  });
});

describe("reportData", () => {
  it("reads the embedded report, and nothing on the live page", () => {
    const element = { textContent: JSON.stringify(DATA) };
    expect(reportData({ getElementById: (id: string) => (id === "report-data" ? (element as HTMLElement) : null) })).toEqual(DATA);
    expect(reportData({ getElementById: () => null })).toBeUndefined();
  });
});
