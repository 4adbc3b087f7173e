/**
 * Drift in words, for the Status tab's banner (GET /v1/drift, server/ops/drift.py): what has drifted, in
 * which task, and since when, as a person reads it. The two input signals of a task (PSI and centroid) say
 * the same thing to a reader, so they make one line. Pure functions, tested without a browser.
 */
import type { DriftReport, DriftSignal } from "../api/types";
import { relativeTime } from "./sync";

const TASKS: Record<string, string> = {
  summarize: "summaries",
  draft_reply: "reply drafts",
  ask: "questions",
  rewrite: "rewrites",
  classify: "triage",
};

/** The task as the pane names it: "summaries", "invoice extraction". */
export function taskName(task: string): string {
  if (task.startsWith("extract:")) return `${task.slice("extract:".length)} extraction`;
  return TASKS[task] ?? task;
}

/** A change of a rate in percentage points: "up 40 points". */
function points(value: number): string {
  return `${value > 0 ? "up" : "down"} ${Math.round(Math.abs(value) * 100)} points`;
}

/** What one signal in alarm means, without its task's input twin or the time. */
export function driftWhat(signal: DriftSignal): string {
  const task = taskName(signal.task);
  const name = signal.signal;
  if (name === "input_psi" || name === "input_centroid") return `what ${task} are given looks different from before`;
  if (name === "label_psi") return `${task} is choosing different labels than it used to`;
  if (name === "confidence_mean") {
    return `${task} results are ${signal.value < 0 ? "less" : "more"} confident than before (${points(signal.value)})`;
  }
  if (name === "review_rate") return `${signal.value > 0 ? "more" : "fewer"} ${task} results go to review (${points(signal.value)})`;
  if (name.startsWith("null_rate:")) {
    const field = name.slice("null_rate:".length);
    return `${task} leaves "${field}" empty ${signal.value > 0 ? "more" : "less"} often (${points(signal.value)})`;
  }
  return `${task}: ${name} is ${signal.value.toFixed(2)} (threshold ${signal.threshold})`;
}

/** One line per drift in alarm, oldest first: "What summaries are given looks different from before (noticed 3 h
 * ago)." */
export function driftLines(report: DriftReport, now: Date): string[] {
  const lines = new Map<string, { what: string; since: string | null }>();
  for (const alarm of report.alarms) {
    const what = driftWhat(alarm);
    const key = `${alarm.task}\u0000${what}`;
    const seen = lines.get(key);
    if (!seen || (alarm.since && (!seen.since || alarm.since < seen.since))) lines.set(key, { what, since: alarm.since ?? null });
  }
  return [...lines.values()]
    .sort((a, b) => (a.since ?? "").localeCompare(b.since ?? ""))
    .map(({ what, since }) => {
      const text = what.charAt(0).toUpperCase() + what.slice(1);
      return since ? `${text} (noticed ${relativeTime(since, now)}).` : `${text}.`;
    });
}
