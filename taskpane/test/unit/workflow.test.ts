// Workflows started from the pane: what is sent for the open message, how a workflow record reads, and
// the polling loop against a scripted server (a fake fetch), with the sleeps recorded instead of waited.
import { describe, expect, it } from "vitest";
import { Api } from "../../src/api/http";
import type { ActionRecord, WorkflowRecord } from "../../src/api/types";
import type { MailItem } from "../../src/hosts/types";
import {
  isWorkflowActive, messageText, requestIdFor, startWorkflow, watchWorkflow, WORKFLOW_FOR_SCHEMA, workflowHeadline,
  workflowInputs, workflowSteps, workflowWait, type WatchEvent,
} from "../../src/shared/workflow";

const ITEM: MailItem = {
  email: { subject: "Q3 numbers", from: "Carol Diaz <carol@example.com>", to: ["Bob Lee <bob@example.com>"], cc: [],
    date: "20/11/2026, 09:12:00", body: "  Please send the Q3 figures by Tuesday.\n\nCarol  " },
  earlier: [],
  sourceRef: "AAMkAGI2/ab+c=",
  conversationId: "AAQk-1",
  messageId: "AAMkAGI2-ab_c=",
  senderAddress: "carol@example.com",
};

function workflow(over: Partial<WorkflowRecord> = {}): WorkflowRecord {
  return {
    id: "wf1", definition: "meeting_followup@1", automation: "meeting_followup", origin: "event:1:meeting_followup",
    eventSeq: 1, status: "running", step: 0, stepName: "extract", steps: ["extract", "review", "follow_up"],
    inputs: {}, outputs: {}, wait: null, attempts: 0, error: null, createdAt: "2026-11-20T09:12:00Z",
    updatedAt: "2026-11-20T09:12:00Z", actions: [], ...over,
  };
}

function action(over: Partial<ActionRecord> = {}): ActionRecord {
  return {
    id: "a1", key: "dp-1", kind: "todo_task", params: { title: "Send the Q3 figures" }, title: "To Do: Send the Q3 figures",
    origin: "wf1:follow_up", runId: null, workflowId: "wf1", step: "follow_up", automation: "meeting_followup",
    confidence: 0.7, status: "pending_review", approval: null, reason: "confidence 0.70 below 0.80", attempts: 0, failures: 0,
    effect: null, error: null, createdAt: "", updatedAt: "", executedAt: null, queuedTs: null, startedTs: null, ...over,
  };
}

describe("what the pane sends to start a workflow", () => {
  it("maps the two extractions to their workflows", () => {
    expect(WORKFLOW_FOR_SCHEMA.email_actions).toMatchObject({ automation: "meeting_followup", button: "Create follow-ups" });
    expect(WORKFLOW_FOR_SCHEMA.invoice).toMatchObject({ automation: "invoice_intake", button: "Send to invoice intake" });
    expect(WORKFLOW_FOR_SCHEMA.contract).toBeUndefined();
  });

  it("sends the message as the model reads it, with its subject, sender address, Graph id and source", () => {
    expect(workflowInputs(ITEM)).toEqual({
      text: "From: Carol Diaz <carol@example.com>\nTo: Bob Lee <bob@example.com>\nDate: 20/11/2026, 09:12:00\n"
        + "Subject: Q3 numbers\n\nPlease send the Q3 figures by Tuesday.\n\nCarol",
      subject: "Q3 numbers",
      sender: "carol@example.com",
      messageId: "AAMkAGI2-ab_c=",
      sourceRef: "AAMkAGI2/ab+c=",
    });
  });

  it("leaves out what it does not know (a draft has no Graph id and no sender)", () => {
    const draft: MailItem = { ...ITEM, email: { ...ITEM.email, from: "", subject: "", to: [], date: null }, messageId: null,
      senderAddress: null, sourceRef: null };
    expect(workflowInputs(draft)).toEqual({ text: "Please send the Q3 figures by Tuesday.\n\nCarol" });
    expect(messageText(draft)).not.toMatch(/^\n/);
  });

  it("derives the request id from the extraction run, so the same result starts one workflow", () => {
    expect(requestIdFor("meeting_followup", "run-7")).toBe("meeting_followup:run-7");
    expect(requestIdFor("meeting_followup", "run-7")).toBe(requestIdFor("meeting_followup", "run-7"));
    expect(requestIdFor("invoice_intake", "run-7")).not.toBe(requestIdFor("meeting_followup", "run-7"));
    const a = requestIdFor("invoice_intake", null);
    expect(a).toMatch(/^invoice_intake:.{16,}$/);
    expect(requestIdFor("invoice_intake", null)).not.toBe(a);
  });

  it("POSTs to /v1/workflows with the request id", async () => {
    const sent: [string, RequestInit | undefined][] = [];
    const api = new Api({ base: "http://127.0.0.1:1", token: "t0ken", fetch: async (url, init) => {
      sent.push([String(url), init]);
      return new Response(JSON.stringify({ workflow: workflow(), created: true }), { status: 202, headers: { "content-type": "application/json" } });
    } });
    const out = await startWorkflow(api, { automation: "meeting_followup", inputs: { text: "x" }, requestId: "meeting_followup:run-7" });
    expect(out.created).toBe(true);
    expect(sent[0][0]).toBe("http://127.0.0.1:1/v1/workflows");
    expect(sent[0][1]?.method).toBe("POST");
    expect(JSON.parse(String(sent[0][1]?.body))).toEqual({ automation: "meeting_followup", inputs: { text: "x" }, requestId: "meeting_followup:run-7" });
  });
});

describe("how a workflow reads", () => {
  it("shows the running step, what is done and what is to come", () => {
    const w = workflow({ step: 1, stepName: "review", status: "running", outputs: { extract: { runId: "r1" } } });
    expect(workflowSteps(w).map((s) => [s.name, s.state])).toEqual([["extract", "done"], ["review", "running"], ["follow_up", "todo"]]);
    expect(workflowHeadline(workflow())).toBe("Read the message…");
    expect(isWorkflowActive(w)).toBe(true);
  });

  it("waits for a review, naming it, and says so when it is overdue", () => {
    const w = workflow({ status: "waiting", step: 1, stepName: "review", wait: { review: "rv9", hours: 24, deadline: 1 } });
    expect(workflowWait(w)).toEqual({ kind: "review", reviewId: "rv9", escalated: false });
    expect(workflowHeadline(w)).toBe("Waiting for a review");
    expect(workflowSteps(w)[1].state).toBe("waiting");
    expect(workflowHeadline({ ...w, wait: { ...w.wait, escalated: true } })).toBe("Waiting for a review (overdue)");
  });

  it("waits for its actions: for approval while one needs a person, else for them to run", () => {
    const w = workflow({ status: "waiting", step: 2, stepName: "follow_up", wait: { actions: ["a1", "a2"] },
      actions: [action(), action({ id: "a2", kind: "draft_reply", status: "queued" })] });
    expect(workflowWait(w)).toEqual({ kind: "actions", actionIds: ["a1", "a2"] });
    expect(workflowHeadline(w)).toBe("Waiting for approval of 1 action");
    const approved = { ...w, actions: [action({ status: "queued" }), action({ id: "a2", status: "executing" })] };
    expect(workflowHeadline(approved)).toBe("Waiting for its actions to run");
  });

  it("is paused while its automation is switched off", () => {
    const w = workflow({ status: "waiting", step: 1, stepName: "review", wait: { automation: "disabled" } });
    expect(workflowWait(w)).toEqual({ kind: "paused" });
    expect(workflowHeadline(w)).toBe("Paused: the automation is switched off");
  });

  it("settles: completed, skipped steps marked, a rejected review stops it, a failure is undone", () => {
    const invoice = workflow({ status: "completed", step: 6, stepName: null,
      steps: ["triage", "extract", "validate", "review", "approver_task", "finance_webhook"],
      outputs: { review: { decision: "not_needed" }, finance_webhook: { skipped: true } } });
    expect(workflowSteps(invoice).map((s) => s.state)).toEqual(["done", "done", "done", "done", "done", "skipped"]);
    expect(workflowHeadline(invoice)).toBe("Completed");
    expect(isWorkflowActive(invoice)).toBe(false);

    const rejected = workflow({ status: "rejected", step: 1, stepName: "review" });
    expect(workflowSteps(rejected).map((s) => s.state)).toEqual(["done", "stopped", "not_run"]);
    expect(workflowHeadline(rejected)).toBe("Stopped: a person rejected it");

    const undone = workflow({ status: "compensated", step: 2, stepName: "follow_up", error: "action todo_task failed for good" });
    expect(workflowSteps(undone)[2].state).toBe("failed");
    expect(workflowHeadline(undone)).toBe("Failed, and what it had done is undone");
    const undoing = workflow({ status: "compensating", step: 2, wait: { compensating: ["a1"] } });
    expect(workflowWait(undoing)).toEqual({ kind: "compensating", actionIds: ["a1"] });
    expect(workflowHeadline(undoing)).toBe("Undoing what it did");
  });
});

describe("watchWorkflow", () => {
  /** A server that answers each GET with the next scripted reply (a record, or an HTTP status). */
  function scripted(replies: (WorkflowRecord | number | "down")[]) {
    const urls: string[] = [];
    const api = new Api({ base: "http://127.0.0.1:1", token: "t0ken", fetch: async (url) => {
      urls.push(String(url));
      const reply = replies.shift();
      if (reply === undefined) throw new Error("no more replies scripted");
      if (reply === "down") throw new TypeError("Failed to fetch");
      if (typeof reply === "number") return new Response(JSON.stringify({ code: "error", message: `status ${reply}` }), { status: reply });
      return new Response(JSON.stringify({ workflow: reply, history: [] }), { headers: { "content-type": "application/json" } });
    } });
    return { api, urls };
  }

  it("polls about once a second until the workflow settles, reporting every state", async () => {
    const { api, urls } = scripted([
      workflow(),
      workflow({ status: "waiting", step: 1, stepName: "review", wait: { review: "rv1" } }),
      workflow({ status: "completed", step: 3, stepName: null }),
    ]);
    const events: WatchEvent[] = [];
    const sleeps: number[] = [];
    const settled = await watchWorkflow(api, "wf/1", (e) => events.push(e), new AbortController().signal,
      { sleep: async (ms) => { sleeps.push(ms); } });
    expect(settled?.status).toBe("completed");
    expect(urls).toEqual(Array(3).fill("http://127.0.0.1:1/v1/workflows/wf%2F1"));
    expect(events.map((e) => ("workflow" in e ? e.workflow.status : e.problem.kind))).toEqual(["running", "waiting", "completed"]);
    expect(sleeps).toEqual([1000, 1000]);
  });

  it("keeps trying with longer waits while the server is down or failing, then goes back to its pace", async () => {
    const { api } = scripted(["down", 503, "down", "down", "down", workflow(), workflow({ status: "completed", step: 3 })]);
    const events: WatchEvent[] = [];
    const sleeps: number[] = [];
    const settled = await watchWorkflow(api, "wf1", (e) => events.push(e), new AbortController().signal,
      { sleep: async (ms) => { sleeps.push(ms); } });
    expect(settled?.status).toBe("completed");
    expect(events.slice(0, 2).map((e) => ("problem" in e ? e.problem.kind : "ok"))).toEqual(["unreachable", "unavailable"]);
    expect(sleeps).toEqual([2000, 4000, 8000, 10000, 10000, 1000]);
  });

  it("stops when the server does not know the workflow", async () => {
    const { api } = scripted([404]);
    const events: WatchEvent[] = [];
    expect(await watchWorkflow(api, "gone", (e) => events.push(e), new AbortController().signal, { sleep: async () => undefined })).toBeNull();
    expect(events).toHaveLength(1);
    expect("problem" in events[0] && events[0].problem.kind).toBe("missing");
  });

  it("stops at once when aborted (another message was selected), reporting nothing more", async () => {
    const { api, urls } = scripted([workflow(), workflow(), workflow()]);
    const controller = new AbortController();
    const events: WatchEvent[] = [];
    const settled = await watchWorkflow(api, "wf1", (e) => { events.push(e); controller.abort(); }, controller.signal);
    expect(settled).toBeNull();
    expect(urls).toHaveLength(1);
    expect(events).toHaveLength(1);
  });
});
