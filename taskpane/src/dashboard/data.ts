/**
 * The dashboard's data (GET /v1/dashboard, or the JSON an auditor's report embeds) turned into what the
 * charts draw. Pure functions, tested with vitest; the wire types come from the OpenAPI document.
 */
import type { components } from "../api/schema.gen";

type Schemas = components["schemas"];
export type Dashboard = Schemas["Dashboard"];
export type Bucket = Dashboard["bucket"];
export type Slo = Schemas["Slo"];
export type GovernanceEvent = Schemas["GovernanceEvent"];
export type ChainHead = Schemas["ChainHead"];
export type DriftCheck = Schemas["DriftCheck"];
export type Verification = Schemas["Verification"];

/** The id of the element that carries a report's data (server/ops/report.py writes it). */
export const REPORT_DATA_ID = "report-data";

export interface Point {
  t: number; // milliseconds since the epoch
  v: number;
}

export interface Series {
  name: string;
  points: Point[];
  dashed?: boolean;
}

/** The data a self-contained report carries, or undefined on the live dashboard. */
export function reportData(doc: Pick<Document, "getElementById"> = document): Dashboard | undefined {
  const element = doc.getElementById(REPORT_DATA_ID);
  if (!element?.textContent) return undefined;
  return JSON.parse(element.textContent) as Dashboard;
}

function series<T extends { at: string }>(name: string, rows: T[], value: (row: T) => number | null | undefined, dashed = false): Series {
  const points: Point[] = [];
  for (const row of rows) {
    const v = value(row);
    if (v !== null && v !== undefined) points.push({ t: Date.parse(row.at), v });
  }
  return { name, points, dashed };
}

export function latencySeries(data: Dashboard): Series[] {
  return [
    series("First token p50", data.latency, (p) => p.ttftP50Ms),
    series("First token p95", data.latency, (p) => p.ttftP95Ms, true),
    series("Total p50", data.latency, (p) => p.totalP50Ms),
    series("Total p95", data.latency, (p) => p.totalP95Ms, true),
  ];
}

/** One series per model profile, of what `pick` reads from each bucket (cost, or tokens). */
export function perProfile(data: Dashboard, pick: (point: Schemas["CostPoint"]) => number): Series[] {
  const byProfile = new Map<string, Schemas["CostPoint"][]>();
  for (const point of data.cost) {
    const rows = byProfile.get(point.profile) ?? [];
    rows.push(point);
    byProfile.set(point.profile, rows);
  }
  return [...byProfile.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, rows]) => series(name, rows, pick));
}

export function qualitySeries(data: Dashboard): Series[] {
  return [series("Review rate", data.quality, (p) => p.reviewRate), series("Override rate", data.quality, (p) => p.overrideRate)];
}

const signalName = (check: DriftCheck): string => `${check.task} · ${check.signal}`;
const ratio = (check: DriftCheck): number => (check.threshold > 0 ? check.value / check.threshold : 0);

/**
 * Each drift signal's checks as a share of its threshold (1 or more is an alarm), so that PSIs, distances
 * and rates share one axis; a dashed line marks the threshold. Only signals that moved (some value above
 * zero) are drawn, the highest first, at most `limit`: a task has a dozen signals, most of them flat.
 */
export function driftSeries(checks: DriftCheck[], limit = 6): Series[] {
  const groups = new Map<string, DriftCheck[]>();
  for (const check of checks) groups.set(signalName(check), [...(groups.get(signalName(check)) ?? []), check]);
  const peak = (rows: DriftCheck[]) => Math.max(...rows.map(ratio));
  const moved = [...groups.entries()].filter(([, rows]) => peak(rows) > 0);
  moved.sort(([a, x], [b, y]) => peak(y) - peak(x) || a.localeCompare(b));
  const out = moved.slice(0, limit).map(([name, rows]) => series(name, rows, ratio));
  if (out.length > 0) {
    const times = checks.map((c) => Date.parse(c.at));
    out.push({ name: "threshold", points: [{ t: Math.min(...times), v: 1 }, { t: Math.max(...times), v: 1 }], dashed: true });
  }
  return out;
}

/** The latest check of each signal: those in alarm first, then the nearest to their threshold. */
export function latestDrift(checks: DriftCheck[]): DriftCheck[] {
  const latest = new Map<string, DriftCheck>();
  for (const check of checks) latest.set(signalName(check), check); // oldest first: the last one wins
  return [...latest.values()].sort((a, b) => Number(b.alarm) - Number(a.alarm) || ratio(b) - ratio(a) || signalName(a).localeCompare(signalName(b)));
}

export interface Totals {
  runs: number;
  cost: number;
  tokensIn: number;
  tokensOut: number;
}

export function costTotals(data: Dashboard): Map<string, Totals> {
  const totals = new Map<string, Totals>();
  for (const p of data.cost) {
    const t = totals.get(p.profile) ?? { runs: 0, cost: 0, tokensIn: 0, tokensOut: 0 };
    totals.set(p.profile, { runs: t.runs + p.runs, cost: t.cost + p.cost, tokensIn: t.tokensIn + p.tokensIn, tokensOut: t.tokensOut + p.tokensOut });
  }
  return totals;
}

/**
 * Whether each chain is as it was last verified: its head is the one the check saw. The events chain also
 * holds the verification's own record, appended after the check: that head counts as unchanged too.
 */
export function verifiedHeads(data: Dashboard): Map<string, boolean> {
  const last = data.chain.lastVerification;
  const details = last?.details ?? {};
  const seen: Record<string, unknown[]> = {
    runs: [details["head_hash"]],
    reviews: [details["reviews_head_hash"]],
    action_log: [details["actions_head_hash"]],
    audit_events: [details["events_head_hash"], last?.hash],
  };
  return new Map(data.chain.heads.map((h) => [h.chain, h.headHash === null || (seen[h.chain] ?? []).includes(h.headHash)]));
}

// -- formatting --------------------------------------------------------------------------------------------

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s`;
  return ms > 0 && ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** A count or a measure as an axis shows it: no more decimals than it has (up to two). */
export function formatNumber(value: number): string {
  return value.toLocaleString("en", { maximumFractionDigits: 2 });
}

export function formatShare(share: number | null | undefined, digits = 1): string {
  return share === null || share === undefined ? "–" : `${(share * 100).toFixed(digits)}%`;
}

export function formatCost(cost: number): string {
  return cost === 0 ? "0" : cost < 0.01 ? cost.toExponential(1) : cost.toFixed(2);
}

/** A UTC time as the charts' axis and the tables show it: "2026-12-07 17:00" (hour) or "2026-12-07" (day). */
export function formatTime(at: string | number, bucket: Bucket = "hour"): string {
  const iso = new Date(at).toISOString();
  return bucket === "day" ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/** An event's details in one line: its plain values as `key=value`, nested ones (time windows) left out. */
export function eventSummary(details: Record<string, unknown>): string {
  // A purge or an erasure says what went in `counts`; its non-zero figures are the summary.
  const counts = details["counts"];
  const went =
    counts !== null && typeof counts === "object"
      ? Object.entries(counts as Record<string, unknown>).filter(([, v]) => typeof v === "number" && v !== 0)
      : [];
  const nothing: [string, unknown][] = counts !== null && typeof counts === "object" && !went.length ? [["removed", "nothing"]] : [];
  return [...Object.entries(details), ...went, ...nothing]
    .filter(([, v]) => v === null || ["string", "number", "boolean"].includes(typeof v))
    .map(([k, v]) => `${k}=${typeof v === "number" ? formatNumber(v) : String(v)}`)
    .join(", ");
}

/** A hash cut for display, its algorithm prefix left out (the full one is in the title and the export). */
export function shortHash(hash: string | null | undefined): string {
  return hash ? `${hash.replace(/^sha256:/, "").slice(0, 12)}…` : "(none)";
}
