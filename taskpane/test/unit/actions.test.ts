// Actions and automations as the pane shows and changes them: labels, one line per action, the bodies of
// the automation updates (the server replaces `approval` whole; a person makes each), and what a change
// that loosens approval would loosen, from the server's message.
import { describe, expect, it } from "vitest";
import type { Automation, Person } from "../../src/api/types";
import {
  actionDetail, actionReason, approvalRows, approvalUpdate, automationLabel, canRetry, confirmedUpdate, countsInOrder,
  enabledUpdate, kindLabel, loosenedChanges, modeLabel, statusColor, statusLabel,
} from "../../src/shared/actions";

const MEGAN: Person = { name: "Megan Bowen", address: "megan@contoso.example" };

const INVOICE_INTAKE: Automation = {
  name: "invoice_intake", workflow: "invoice_intake", enabled: true, threshold: 0.8, dailyBudget: null,
  approval: { draft_reply: "never", todo_task: "below_threshold", file_document: "below_threshold", calendar_event: "always", webhook: "always" },
  settings: { reviewTimeoutHours: 24 },
};

describe("actions as the pane shows them", () => {
  it("names kinds and statuses, and falls back to a readable name for new ones", () => {
    expect(kindLabel("todo_task")).toBe("To Do task");
    expect(kindLabel("teams_message")).toBe("Teams message");
    expect([statusLabel("pending_review"), statusColor("pending_review")]).toEqual(["Needs approval", "warning"]);
    expect([statusLabel("executed"), statusColor("executed")]).toEqual(["Done", "success"]);
    expect([statusLabel("held"), statusLabel("compensated")]).toEqual(["Held", "Undone"]);
    expect([statusLabel("archived"), statusColor("archived")]).toEqual(["Archived", "informative"]);
    expect(automationLabel("meeting_followup")).toBe("Meeting follow-up");
  });

  it("lists the counts in reading order without zeros", () => {
    expect(countsInOrder({ executed: 3, failed: 0, pending_review: 2, held: 1, archived: 4 })).toEqual([
      { status: "pending_review", label: "Needs approval", count: 2 },
      { status: "executed", label: "Done", count: 3 },
      { status: "held", label: "Held", count: 1 },
      { status: "archived", label: "Archived", count: 4 },
    ]);
  });

  it("says in one line what each kind of action will do", () => {
    expect(actionDetail({ kind: "todo_task", params: { title: "Approve INV-7", due: "2026-12-01", listName: "Finance" } }))
      .toBe("Approve INV-7, due 2026-12-01, in Finance");
    expect(actionDetail({ kind: "calendar_event", params: { subject: "Board prep", start: "2026-11-30T10:00:00", end: "x", attendees: ["a@x", "b@x"] } }))
      .toBe("Board prep: 2026-11-30 10:00:00, 2 invited");
    expect(actionDetail({ kind: "draft_reply", params: { messageId: "m", body: "\nThanks, here are the follow-ups:\n\n- one" } }))
      .toBe("Thanks, here are the follow-ups:");
    expect(actionDetail({ kind: "file_document", params: { folder: "Finance/Invoices", name: "INV-7.txt" } })).toBe("Finance/Invoices/INV-7.txt");
    expect(actionDetail({ kind: "webhook", params: { url: "https://hooks.example.com/finance?x=1", payload: {} } })).toBe("POST to hooks.example.com");
    expect(actionDetail({ kind: "webhook", params: { url: "not a url", payload: {} } })).toBe("POST");
  });

  it("gives the reason it waits or was held, and the error when it failed", () => {
    expect(actionReason({ status: "held", reason: "automation disabled (kill switch)", error: null })).toBe("automation disabled (kill switch)");
    expect(actionReason({ status: "failed", reason: null, error: "PermanentError: 404 no such message" })).toBe("PermanentError: 404 no such message");
    expect(actionReason({ status: "executed", reason: null, error: null })).toBe("");
  });
});

describe("automation settings", () => {
  it("shows every action kind with its approval mode, 'always' where the automation names none", () => {
    const rows = approvalRows({ ...INVOICE_INTAKE, approval: { todo_task: "never", teams_message: "never" } });
    expect(rows.map((r) => [r.kind, r.mode])).toEqual([
      ["draft_reply", "always"], ["todo_task", "never"], ["calendar_event", "always"], ["file_document", "always"],
      ["webhook", "always"], ["teams_message", "never"],
    ]);
  });

  it("sends the whole approval map with one kind changed, and the kill switch alone, each with the person", () => {
    expect(approvalUpdate(INVOICE_INTAKE, "todo_task", "always", MEGAN)).toEqual({
      approval: { ...INVOICE_INTAKE.approval, todo_task: "always" },
      actor: MEGAN,
    });
    expect(INVOICE_INTAKE.approval?.todo_task).toBe("below_threshold"); // not changed in place
    expect(enabledUpdate(false, MEGAN)).toEqual({ enabled: false, actor: MEGAN });
  });

  it("sends a loosening again only as a confirmed copy of the same change", () => {
    const update = approvalUpdate(INVOICE_INTAKE, "webhook", "never", MEGAN);
    expect(update.confirmLoosening).toBeUndefined(); // never confirmed before the person says so
    expect(confirmedUpdate(update)).toEqual({ ...update, confirmLoosening: true });
    expect(update.confirmLoosening).toBeUndefined();
  });

  it("says in words what a change would loosen, from the server's 409 or 403 message", () => {
    const confirm = "this change loosens the approval of 'invoice_intake': webhook: always -> never; "
      + "todo_task: always -> below_threshold; threshold: 0.8 -> 0.6; alwaysReview: on -> off. "
      + 'A person must confirm this: send the change again with "confirmLoosening": true.';
    expect(loosenedChanges(confirm)).toEqual([
      "Webhook: from “Always ask” to “Don't ask”",
      "To Do task: from “Always ask” to “Ask when unsure”",
      "“Ask when unsure” asks only below 60% confidence, not below 80%",
      "Results no longer always go to review",
    ]);
    const forbidden = "loosening the approval of 'taskpane' is not allowed on this computer "
      + "(allow_loosening_approval is false): calendar_event: below_threshold -> never";
    expect(loosenedChanges(forbidden)).toEqual(["Calendar event: from “Ask when unsure” to “Don't ask”"]);
    expect(loosenedChanges("this change loosens the approval of 'x': teams_message: always -> sometimes.")).toEqual([
      "Teams message: from “Always ask” to “Sometimes”",
    ]);
    expect(loosenedChanges("something else went wrong")).toEqual([]); // the pane shows the message itself
    expect(modeLabel("below_threshold")).toBe("Ask when unsure");
  });

  it("offers to try a failed action again, except one a workflow already undid around", () => {
    expect(canRetry({ status: "failed", workflowId: null })).toBe(true);
    expect(canRetry({ status: "failed", workflowId: "wf_1" })).toBe(false);
    for (const status of ["queued", "executing", "executed", "held", "rejected", "compensated"] as const) {
      expect(canRetry({ status, workflowId: null })).toBe(false);
    }
  });
});
