/**
 * React state for the workflow the pane started on the open message: start it (once per request id, so
 * a double click is one workflow), then follow it until it settles. It lives in App, not in the Outlook
 * view, so that going to the review queue and back keeps the progress; a new message resets it.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, isAbort, type Api } from "../api/http";
import type { Person, WorkflowRecord } from "../api/types";
import { startWorkflow, watchWorkflow, type AutomationName } from "../shared/workflow";

export interface WorkflowRequest {
  automation: AutomationName;
  /** The progress panel's title: "Follow-ups". */
  title: string;
  requestId: string;
  inputs: Record<string, string>;
  /** The person who starts it, when the pane knows them (recorded with the workflow). */
  actor?: Person;
}

export interface WorkflowState {
  request: WorkflowRequest;
  /** starting: POST in flight; watching: polling an active workflow; settled: it ended; failed: no workflow. */
  phase: "starting" | "watching" | "settled" | "failed";
  workflow?: WorkflowRecord;
  /** False when the server answered with the workflow an earlier request (same id) had started. */
  created?: boolean;
  /** The last request that failed: starting it, or one poll (kept until the next answer). */
  problem?: ApiError;
}

export interface WorkflowHandle {
  state: WorkflowState | null;
  start(request: WorkflowRequest): void;
  reset(): void;
}

export function useWorkflow(api: Api): WorkflowHandle {
  const [state, setState] = useState<WorkflowState | null>(null);
  const controller = useRef<AbortController | null>(null);
  // Which request is starting or followed: a second click (or a re-render) before the state shows it
  // must not send a second request.
  const current = useRef<{ requestId: string; phase: WorkflowState["phase"] } | null>(null);

  const follow = useCallback((request: WorkflowRequest, id: string, c: AbortController) => {
    void watchWorkflow(api, id, (event) => {
      setState((s) => {
        if (!s || s.request.requestId !== request.requestId) return s;
        if ("problem" in event) return { ...s, problem: event.problem };
        return { ...s, workflow: event.workflow, problem: undefined };
      });
    }, c.signal).then((settled) => {
      if (c.signal.aborted) return;
      const phase = settled ? "settled" : "failed";
      current.current = { requestId: request.requestId, phase };
      setState((s) => (s && s.request.requestId === request.requestId ? { ...s, phase } : s));
    });
  }, [api]);

  const start = useCallback((request: WorkflowRequest) => {
    const now = current.current;
    if (now?.requestId === request.requestId && now.phase !== "failed") return;
    controller.current?.abort();
    const c = new AbortController();
    controller.current = c;
    current.current = { requestId: request.requestId, phase: "starting" };
    setState({ request, phase: "starting" });
    startWorkflow(api, { automation: request.automation, inputs: request.inputs, requestId: request.requestId, actor: request.actor }, c.signal)
      .then(({ workflow, created }) => {
        if (c.signal.aborted) return;
        current.current = { requestId: request.requestId, phase: "watching" };
        setState({ request, phase: "watching", workflow, created });
        follow(request, workflow.id, c);
      }, (error: unknown) => {
        if (c.signal.aborted || isAbort(error)) return;
        current.current = { requestId: request.requestId, phase: "failed" };
        const problem = error instanceof ApiError ? error : new ApiError("server", String(error));
        setState({ request, phase: "failed", problem });
      });
  }, [api, follow]);

  const reset = useCallback(() => {
    controller.current?.abort();
    controller.current = null;
    current.current = null;
    setState(null);
  }, []);

  useEffect(() => () => controller.current?.abort(), []);

  return { state, start, reset };
}
