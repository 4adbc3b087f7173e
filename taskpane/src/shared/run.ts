/**
 * One AI run as the pane sees it: a pure reducer over the server's events, so the states (waiting,
 * streaming, done, cancelled, failed) and their transitions are tested without a browser.
 *
 * Events: `meta` (run id, model), `token` (text delta), `progress` and `result` (extraction), `sources`
 * (ask), `grounded` (what the faithfulness check kept of a summary or an answer), `done` (usage, timings), `error` (code, message). Unknown events are ignored, so a server that
 * adds one does not break an older pane.
 */
import type { ProblemKind } from "../api/http";
import type { DoneEvent, GroundedEvent, MetaEvent, Source } from "../api/types";
import type { ProgressEvent } from "../api/types";

export type RunPhase = "idle" | "waiting" | "streaming" | "done" | "cancelled" | "failed";

export interface Problem {
  kind: ProblemKind;
  message: string;
  code?: string;
  retryAfter?: number;
}

export interface RunState {
  phase: RunPhase;
  text: string;
  meta?: MetaEvent;
  done?: DoneEvent;
  progress?: ProgressEvent;
  result?: unknown;
  sources?: Source[];
  /** The checked sentences, shown in place of the streamed text once they arrive. */
  grounded?: GroundedEvent;
  problem?: Problem;
  /** performance.now() of the click, and of the first token rendered: the latency the user feels. */
  startedAt?: number;
  firstTokenAt?: number;
}

export type RunAction =
  | { type: "start"; at: number }
  | { type: "event"; event: string; data: unknown; at: number }
  | { type: "ended" }
  | { type: "fail"; problem: Problem }
  | { type: "cancel" }
  | { type: "reset" };

export const IDLE: RunState = { phase: "idle", text: "" };

export function isActive(state: RunState): boolean {
  return state.phase === "waiting" || state.phase === "streaming";
}

function sourcesOf(data: unknown): Source[] {
  if (Array.isArray(data)) return data as Source[];
  const list = (data as { sources?: unknown })?.sources;
  return Array.isArray(list) ? (list as Source[]) : [];
}

function onEvent(state: RunState, event: string, data: unknown, at: number): RunState {
  switch (event) {
    case "meta":
      return { ...state, meta: data as MetaEvent };
    case "token": {
      const text = (data as { text?: unknown })?.text;
      if (typeof text !== "string" || text === "") return state;
      return { ...state, phase: "streaming", text: state.text + text, firstTokenAt: state.firstTokenAt ?? at };
    }
    case "progress": {
      const progress = data as ProgressEvent;
      return { ...state, progress, phase: progress?.stage === "waiting" ? state.phase : "streaming" };
    }
    case "result":
      return { ...state, phase: "streaming", result: data };
    case "sources":
      return { ...state, sources: sourcesOf(data) };
    case "grounded":
      return Array.isArray((data as GroundedEvent | null)?.sentences) ? { ...state, grounded: data as GroundedEvent } : state;
    case "done":
      return { ...state, phase: "done", done: data as DoneEvent, progress: undefined };
    case "error": {
      const { code = "error", message = "the model stopped with an error" } = (data ?? {}) as { code?: string; message?: string };
      const kind = code === "busy" ? "busy" : code === "model_unavailable" || code === "shutdown" ? "unavailable" : "stream";
      return { ...state, phase: "failed", problem: { kind, code, message } };
    }
    default:
      return state;
  }
}

export function runReducer(state: RunState, action: RunAction): RunState {
  switch (action.type) {
    case "start":
      return { phase: "waiting", text: "", startedAt: action.at };
    case "event":
      if (!isActive(state)) return state; // late events after a cancel
      return onEvent(state, action.event, action.data, action.at);
    case "ended":
      // The stream closed. Without `done` (or `error`) it broke off: say so rather than pretend.
      if (!isActive(state)) return state;
      return { ...state, phase: "failed", problem: { kind: "stream", message: "the answer stopped before it was complete" } };
    case "fail":
      return isActive(state) ? { ...state, phase: "failed", problem: action.problem } : state;
    case "cancel":
      return isActive(state) ? { ...state, phase: "cancelled" } : state;
    case "reset":
      return IDLE;
  }
}
