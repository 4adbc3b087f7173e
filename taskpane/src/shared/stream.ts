/**
 * Drive one run: POST, feed every event to the reducer as it arrives, translate failures. Kept apart from
 * React so it can be tested with a fake fetch; the UI's useRun hook owns the AbortController.
 */
import { ApiError, isAbort, type Api } from "../api/http";
import { streamEvents } from "../api/sse";
import type { RunAction } from "./run";

export type Dispatch = (action: RunAction) => void;

const now = (): number => globalThis.performance?.now() ?? Date.now();

export async function runStream(api: Api, path: string, body: unknown, dispatch: Dispatch, signal: AbortSignal): Promise<void> {
  dispatch({ type: "start", at: now() });
  try {
    for await (const { event, data } of streamEvents(api, path, body, signal)) {
      if (signal.aborted) break;
      dispatch({ type: "event", event, data, at: now() });
    }
    if (signal.aborted) dispatch({ type: "cancel" });
    else dispatch({ type: "ended" });
  } catch (error) {
    if (isAbort(error) || signal.aborted) {
      dispatch({ type: "cancel" });
      return;
    }
    const e = error instanceof ApiError ? error : new ApiError("server", String(error));
    dispatch({ type: "fail", problem: { kind: e.kind, message: e.message, code: e.code, retryAfter: e.retryAfter } });
  }
}
