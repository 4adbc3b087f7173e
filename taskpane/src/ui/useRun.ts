/**
 * React state for one AI run at a time: start (streamed or plain JSON), cancel, retry, and the 429
 * countdown. The model serves one request at a time, so the pane runs one task at a time too; starting a
 * new one cancels the old one (its stream is aborted, which stops its generation on the server).
 */
import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { ApiError, isAbort, type Api } from "../api/http";
import { IDLE, isActive, runReducer, type RunState } from "../shared/run";
import { runStream } from "../shared/stream";

export interface RunRequest {
  /** What the run produces, shown above its output: "Summary of this message". */
  label: string;
  path: string;
  body: unknown;
  /** "stream" for SSE endpoints, "json" for a plain JSON answer (shown as a structured result). */
  mode?: "stream" | "json";
}

export interface RunHandle {
  state: RunState;
  request: RunRequest | null;
  /** Seconds until the automatic retry after a 429, or null. */
  retryIn: number | null;
  start(request: RunRequest): void;
  cancel(): void;
  retry(): void;
  reset(): void;
}

/** Automatic retries after a 429, before the pane leaves it to the user. */
const AUTO_RETRIES = 2;

export function useRun(api: Api): RunHandle {
  const [state, dispatch] = useReducer(runReducer, IDLE);
  const [request, setRequest] = useState<RunRequest | null>(null);
  const [retryIn, setRetryIn] = useState<number | null>(null);
  const controller = useRef<AbortController | null>(null);
  const timer = useRef<ReturnType<typeof setInterval> | null>(null);
  const retries = useRef(0);

  const stopTimer = useCallback(() => {
    if (timer.current !== null) clearInterval(timer.current);
    timer.current = null;
    setRetryIn(null);
  }, []);

  const launch = useCallback((next: RunRequest) => {
    controller.current?.abort();
    stopTimer();
    const c = new AbortController();
    controller.current = c;
    setRequest(next);
    if (next.mode === "json") {
      dispatch({ type: "start", at: performance.now() });
      api.post<unknown>(next.path, next.body, c.signal).then(
        (data) => {
          dispatch({ type: "event", event: "result", data, at: performance.now() });
          const runId = (data as { runId?: string })?.runId;
          dispatch({ type: "event", event: "done", data: { runId }, at: performance.now() });
        },
        (error: unknown) => {
          if (isAbort(error)) return dispatch({ type: "cancel" });
          const e = error instanceof ApiError ? error : new ApiError("server", String(error));
          dispatch({ type: "fail", problem: { kind: e.kind, message: e.message, code: e.code, retryAfter: e.retryAfter } });
        },
      );
    } else {
      void runStream(api, next.path, next.body, dispatch, c.signal);
    }
  }, [api, stopTimer]);

  const start = useCallback((next: RunRequest) => {
    retries.current = 0;
    launch(next);
  }, [launch]);

  const retry = useCallback(() => {
    if (request) launch(request);
  }, [launch, request]);

  const cancel = useCallback(() => {
    stopTimer();
    controller.current?.abort();
    dispatch({ type: "cancel" });
  }, [stopTimer]);

  const reset = useCallback(() => {
    stopTimer();
    controller.current?.abort();
    dispatch({ type: "reset" });
    setRequest(null);
  }, [stopTimer]);

  // Model busy: count down the server's Retry-After, then try again (a couple of times at most).
  useEffect(() => {
    if (state.phase !== "failed" || state.problem?.kind !== "busy" || !request) return;
    if (retries.current >= AUTO_RETRIES) return;
    let left = Math.max(1, state.problem.retryAfter ?? 5);
    setRetryIn(left);
    timer.current = setInterval(() => {
      left -= 1;
      if (left > 0) return setRetryIn(left);
      stopTimer();
      retries.current += 1;
      launch(request);
    }, 1000);
    return stopTimer;
  }, [state.phase, state.problem, request, launch, stopTimer]);

  useEffect(() => () => controller.current?.abort(), []);

  return { state, request, retryIn, start, cancel, retry, reset };
}

export { isActive };
