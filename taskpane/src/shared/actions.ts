/**
 * Actions (what Deskpilot does in Microsoft 365 or sends out) and the automations that propose them, as
 * the pane shows them: names for kinds, statuses and approval modes, one line of detail per action, the
 * partial updates Settings sends (PUT /v1/automations/{name}) with the person who makes them, and what a
 * change that loosens approval would loosen, for the person to confirm.
 */
import type { ActionRecord, ActionStatus, ApprovalMode, Automation, AutomationPut, Person } from "../api/types";
import { humanize, percent } from "./result";

export const ACTION_KINDS = ["draft_reply", "todo_task", "calendar_event", "file_document", "webhook"] as const;

const KIND_LABELS: Record<string, string> = {
  draft_reply: "Reply draft",
  todo_task: "To Do task",
  calendar_event: "Calendar event",
  file_document: "File in OneDrive",
  webhook: "Webhook",
};

export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? humanize(kind);
}

type BadgeColor = "brand" | "danger" | "important" | "informative" | "severe" | "subtle" | "success" | "warning";

const STATUS: Record<ActionStatus, { label: string; color: BadgeColor }> = {
  pending_review: { label: "Needs approval", color: "warning" },
  queued: { label: "Queued", color: "informative" },
  executing: { label: "Running", color: "brand" },
  executed: { label: "Done", color: "success" },
  failed: { label: "Failed", color: "danger" },
  rejected: { label: "Rejected", color: "subtle" },
  held: { label: "Held", color: "severe" },
  compensating: { label: "Undoing", color: "warning" },
  compensated: { label: "Undone", color: "subtle" },
};

export function statusLabel(status: string): string {
  return STATUS[status as ActionStatus]?.label ?? humanize(status);
}

export function statusColor(status: string): BadgeColor {
  return STATUS[status as ActionStatus]?.color ?? "informative";
}

/** The counts in the order a person reads them, without the zeros. */
export function countsInOrder(counts: Record<string, number>): { status: string; label: string; count: number }[] {
  const order = [...Object.keys(STATUS), ...Object.keys(counts).filter((s) => !(s in STATUS))];
  return order.filter((s) => (counts[s] ?? 0) > 0).map((s) => ({ status: s, label: statusLabel(s), count: counts[s] }));
}

function text(value: unknown): string {
  return typeof value === "string" ? value.trim() : "";
}

function firstLine(value: unknown, max = 80): string {
  const line = text(value).split(/\r?\n/).find((l) => l.trim()) ?? "";
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** One line that says what the action will do, from its parameters (actions/_types.py). */
export function actionDetail(action: Pick<ActionRecord, "kind" | "params">): string {
  const p = action.params ?? {};
  switch (action.kind) {
    case "todo_task":
      return [text(p.title), text(p.due) && `due ${text(p.due)}`, text(p.listName) && `in ${text(p.listName)}`].filter(Boolean).join(", ");
    case "calendar_event": {
      const who = Array.isArray(p.attendees) && p.attendees.length ? `, ${p.attendees.length} invited` : "";
      return `${text(p.subject)}: ${text(p.start).replace("T", " ")}${who}`;
    }
    case "draft_reply":
      return firstLine(p.body);
    case "file_document":
      return [text(p.folder), text(p.name)].filter(Boolean).join("/");
    case "webhook":
      try {
        return `POST to ${new URL(text(p.url)).host}`;
      } catch {
        return "POST";
      }
    default:
      return "";
  }
}

/** Why it waits, was held, rejected or failed: the server's reason, else its error. */
export function actionReason(action: Pick<ActionRecord, "reason" | "error" | "status">): string {
  if (action.status === "failed" || action.status === "compensated") return text(action.error) || text(action.reason);
  return text(action.reason) || text(action.error);
}

/** A person may run a failed action again (its retries were spent), unless it belonged to a workflow:
 *  the workflow undid its other steps when it failed, so it is started again instead. */
export function canRetry(action: Pick<ActionRecord, "status" | "workflowId">): boolean {
  return action.status === "failed" && !action.workflowId;
}

export const APPROVAL_MODES: readonly { mode: ApprovalMode; label: string }[] = [
  { mode: "always", label: "Always ask" },
  { mode: "below_threshold", label: "Ask when unsure" },
  { mode: "never", label: "Don't ask" },
];

/** Every kind the automation decides on, the known ones first, each with its mode ("always" if unset). */
export function approvalRows(automation: Automation): { kind: string; label: string; mode: ApprovalMode }[] {
  const approval = automation.approval ?? {};
  const kinds = [...ACTION_KINDS, ...Object.keys(approval).filter((k) => !(ACTION_KINDS as readonly string[]).includes(k))];
  return kinds.map((kind) => ({ kind, label: kindLabel(kind), mode: approval[kind] ?? "always" }));
}

export function modeLabel(mode: string): string {
  return APPROVAL_MODES.find((m) => m.mode === mode)?.label ?? humanize(mode);
}

/** The server replaces `approval` whole, so a change to one kind sends the full map; `actor` makes it. */
export function approvalUpdate(automation: Automation, kind: string, mode: ApprovalMode, actor: Person): AutomationPut {
  return { approval: { ...(automation.approval ?? {}), [kind]: mode }, actor };
}

export function enabledUpdate(enabled: boolean, actor: Person): AutomationPut {
  return { enabled, actor };
}

/** The same change, sent again once the person confirmed that it loosens approval. */
export function confirmedUpdate(update: AutomationPut): AutomationPut {
  return { ...update, confirmLoosening: true };
}

/**
 * What a change would loosen, from the server's 409 `confirmation_required` (or 403 `loosening_forbidden`)
 * message: "... loosens the approval of 'invoice_intake': webhook: always -> never; threshold: 0.8 -> 0.6.
 * A person must confirm ...". Each change in words ("Webhook: from “Always ask” to “Don't ask”"); empty
 * when the message does not list them (then the message itself is shown).
 */
export function loosenedChanges(message: string): string[] {
  const list = /approval of '[^']*'[^:]*: (.+?)(?:\. A person must confirm|\.?$)/s.exec(message.trim());
  if (!list) return [];
  return list[1].split("; ").map((change) => {
    const parts = /^(\w+): (\S+) -> (\S+)$/.exec(change.trim());
    if (!parts) return change.trim();
    const [, what, before, after] = parts;
    if (what === "threshold") {
      const [b, a] = [Number(before), Number(after)];
      return Number.isFinite(b) && Number.isFinite(a)
        ? `“Ask when unsure” asks only below ${percent(a)} confidence, not below ${percent(b)}`
        : change.trim();
    }
    if (what === "alwaysReview") return "Results no longer always go to review";
    return `${kindLabel(what)}: from “${modeLabel(before)}” to “${modeLabel(after)}”`;
  });
}

const AUTOMATION_LABELS: Record<string, string> = {
  meeting_followup: "Meeting follow-up",
  invoice_intake: "Invoice intake",
  taskpane: "Actions you start in the pane",
};

export function automationLabel(name: string): string {
  return AUTOMATION_LABELS[name] ?? humanize(name);
}
