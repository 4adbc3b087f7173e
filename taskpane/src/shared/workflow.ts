/**
 * Workflows the pane starts on the open message (POST /v1/workflows), and how their progress reads.
 *
 * An extraction the user has just looked at leads to its workflow: action items to "meeting_followup",
 * invoice fields to "invoice_intake". The workflow does its own extraction in the server's consumer (its
 * lineage is its own), so the pane sends the message, not the result it showed. The request id is derived
 * from the extraction run the button belongs to: a double click, a retry after a dropped answer, or the
 * same result clicked again after a reload are one workflow; a new extraction may start another.
 *
 * Progress is read by polling GET /v1/workflows/{id} about once a second while the workflow is active
 * (running, waiting, compensating): steps finish in the consumer, reviews are decided elsewhere, and the
 * server has no push channel for them.
 */
import { ApiError, isAbort, type Api } from "../api/http";
import type { WorkflowIn, WorkflowOut, WorkflowRecord } from "../api/types";
import type { MailItem } from "../hosts/types";
import { humanize } from "./result";

export type AutomationName = "meeting_followup" | "invoice_intake";

export interface WorkflowKind {
  automation: AutomationName;
  /** The button under the extraction's result. */
  button: string;
  /** The progress panel's title. */
  title: string;
}

/** Which extraction schema leads to which workflow. */
export const WORKFLOW_FOR_SCHEMA: Readonly<Record<string, WorkflowKind>> = {
  email_actions: { automation: "meeting_followup", button: "Create follow-ups", title: "Follow-ups" },
  invoice: { automation: "invoice_intake", button: "Send to invoice intake", title: "Invoice intake" },
};

/** The message as the model reads it in the pane's own tasks: headers, a blank line, the newest text. */
export function messageText(item: MailItem): string {
  const e = item.email;
  const head = [
    e.from ? `From: ${e.from}` : "",
    e.to?.length ? `To: ${e.to.join(", ")}` : "",
    e.cc?.length ? `Cc: ${e.cc.join(", ")}` : "",
    e.date ? `Date: ${e.date}` : "",
    e.subject ? `Subject: ${e.subject}` : "",
  ].filter(Boolean);
  return [...head, "", e.body.trim()].join("\n").trim();
}

/** The workflow's inputs from the open message (definitions.py names them); unknown values are left out. */
export function workflowInputs(item: MailItem): Record<string, string> {
  const inputs: Record<string, string> = { text: messageText(item) };
  const optional: [string, string | null | undefined][] = [
    ["subject", item.email.subject],
    ["sender", item.senderAddress],
    ["messageId", item.messageId],
    ["sourceRef", item.sourceRef],
  ];
  for (const [name, value] of optional) if (value) inputs[name] = value;
  return inputs;
}

function randomId(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One workflow per automation and extraction run; a random one when the run has no id. */
export function requestIdFor(automation: AutomationName, runId?: string | null): string {
  return `${automation}:${runId || randomId()}`;
}

export function startWorkflow(api: Api, body: WorkflowIn, signal?: AbortSignal): Promise<WorkflowOut> {
  return api.post<WorkflowOut>("/v1/workflows", body, signal);
}

const ACTIVE: ReadonlySet<WorkflowRecord["status"]> = new Set(["running", "waiting", "compensating"]);

export function isWorkflowActive(workflow: WorkflowRecord): boolean {
  return ACTIVE.has(workflow.status);
}

// -- reading a workflow ------------------------------------------------------------------------------

const STEP_LABELS: Record<string, string> = {
  triage: "Triage the message",
  extract: "Read the message",
  validate: "Check the fields",
  review: "A person checks",
  approver_task: "To Do task for the approver",
  finance_webhook: "Post to finance",
  follow_up: "Create the follow-ups",
};

export function stepLabel(name: string): string {
  return STEP_LABELS[name] ?? humanize(name);
}

export type StepState = "done" | "skipped" | "running" | "waiting" | "failed" | "stopped" | "todo" | "not_run";

export interface StepView {
  name: string;
  label: string;
  state: StepState;
}

export function workflowSteps(w: WorkflowRecord): StepView[] {
  const active = isWorkflowActive(w);
  return w.steps.map((name, i) => {
    let state: StepState;
    if (i < w.step) {
      const output = w.outputs?.[name] as { skipped?: unknown } | undefined;
      state = output?.skipped === true ? "skipped" : "done";
    } else if (i === w.step) {
      state = w.status === "running" ? "running"
        : w.status === "waiting" ? "waiting"
        : w.status === "skipped" || w.status === "rejected" ? "stopped"
        : w.status === "completed" ? "done" : "failed";
    } else {
      state = active ? "todo" : "not_run";
    }
    return { name, label: stepLabel(name), state };
  });
}

export type WorkflowWait =
  | { kind: "review"; reviewId: string; escalated: boolean }
  | { kind: "actions"; actionIds: string[] }
  | { kind: "paused" }
  | { kind: "compensating"; actionIds: string[] };

/** What a waiting (or compensating) workflow waits for, from its `wait` record (engine.py). */
export function workflowWait(w: WorkflowRecord): WorkflowWait | null {
  const wait = w.wait ?? {};
  const ids = (value: unknown) => (Array.isArray(value) ? value.map(String) : []);
  if (w.status === "compensating") return { kind: "compensating", actionIds: ids(wait.compensating) };
  if (w.status !== "waiting") return null;
  if (wait.automation === "disabled") return { kind: "paused" };
  if (typeof wait.review === "string") return { kind: "review", reviewId: wait.review, escalated: wait.escalated === true };
  if (Array.isArray(wait.actions)) return { kind: "actions", actionIds: ids(wait.actions) };
  return null;
}

const ENDED: Record<string, string> = {
  completed: "Completed",
  skipped: "Skipped",
  rejected: "Stopped: a person rejected it",
  failed: "Failed",
  compensated: "Failed, and what it had done is undone",
};

/** One line for where the workflow is: "Read the message…", "Waiting for your review", "Completed". */
export function workflowHeadline(w: WorkflowRecord): string {
  const wait = workflowWait(w);
  if (wait?.kind === "review") return wait.escalated ? "Waiting for a review (overdue)" : "Waiting for a review";
  if (wait?.kind === "actions") {
    const pending = (w.actions ?? []).filter((a) => wait.actionIds.includes(a.id) && a.status === "pending_review").length;
    return pending > 0 ? `Waiting for approval of ${pending} action${pending === 1 ? "" : "s"}` : "Waiting for its actions to run";
  }
  if (wait?.kind === "paused") return "Paused: the automation is switched off";
  if (w.status === "compensating") return "Undoing what it did";
  if (w.status === "running") return w.stepName ? `${stepLabel(w.stepName)}…` : "Starting…";
  if (w.status === "waiting") return "Waiting";
  return ENDED[w.status] ?? humanize(w.status);
}

// -- watching -----------------------------------------------------------------------------------------

export type WatchEvent = { workflow: WorkflowRecord } | { problem: ApiError };

export interface WatchOptions {
  /** Between polls while all is well (default 1 s). */
  intervalMs?: number;
  /** The longest wait between polls after errors, which double it each time (default 10 s). */
  maxIntervalMs?: number;
  /** For tests: resolves after `ms`, or early when `signal` aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/**
 * Poll the workflow until it settles (returned) or `signal` aborts (null). Every answer and every error
 * goes to `onEvent`; an unreachable or failing server is retried with backoff, a workflow the server no
 * longer knows (404) or a refused access token (401: only reopening the pane helps) ends the watch.
 */
export async function watchWorkflow(api: Api, id: string, onEvent: (event: WatchEvent) => void, signal: AbortSignal,
  options: WatchOptions = {}): Promise<WorkflowRecord | null> {
  const interval = options.intervalMs ?? 1000;
  const longest = options.maxIntervalMs ?? 10_000;
  const sleep = options.sleep ?? abortableSleep;
  let delay = interval;
  while (!signal.aborted) {
    try {
      const { workflow } = await api.get<WorkflowOut>(`/v1/workflows/${encodeURIComponent(id)}`, signal);
      if (signal.aborted) return null;
      onEvent({ workflow });
      if (!isWorkflowActive(workflow)) return workflow;
      delay = interval;
    } catch (error) {
      if (signal.aborted || isAbort(error)) return null;
      const problem = error instanceof ApiError ? error : new ApiError("server", String(error));
      onEvent({ problem });
      if (problem.kind === "missing" || problem.kind === "unauthorized") return null;
      delay = Math.min(delay * 2, longest);
    }
    await sleep(delay, signal);
  }
  return null;
}
