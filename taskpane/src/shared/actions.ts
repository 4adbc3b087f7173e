/**
 * Actions (what Deskpilot does in Microsoft 365 or sends out) and the automations that propose them, as
 * the pane shows them: names for kinds, statuses and approval modes, one line of detail per action, who
 * approves, and the partial updates Settings sends (PUT /v1/automations/{name}).
 */
import type { ActionRecord, ActionStatus, ApprovalMode, Automation, AutomationPut } from "../api/types";
import { humanize } from "./result";

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

/** Who approves: the name in Settings, else the Outlook user's, else a name that says where it came from. */
export function approverName(reviewer: string, userName?: string | null): string {
  return reviewer.trim() || userName?.trim() || "Task pane user";
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

/** The server replaces `approval` whole, so a change to one kind sends the full map. */
export function approvalUpdate(automation: Automation, kind: string, mode: ApprovalMode, actor: string): AutomationPut {
  return { approval: { ...(automation.approval ?? {}), [kind]: mode }, actor };
}

export function enabledUpdate(enabled: boolean, actor: string): AutomationPut {
  return { enabled, actor };
}

const AUTOMATION_LABELS: Record<string, string> = {
  meeting_followup: "Meeting follow-up",
  invoice_intake: "Invoice intake",
  taskpane: "Actions you start in the pane",
};

export function automationLabel(name: string): string {
  return AUTOMATION_LABELS[name] ?? humanize(name);
}
