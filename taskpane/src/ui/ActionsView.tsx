/**
 * Actions: what Deskpilot will do in Microsoft 365 or send out. What waits for a person is approved or
 * rejected here, as the person the pane knows (Outlook's user, else the name and email in Settings; the
 * action's history records both); what ran, failed or is held is listed with why. The lists refresh every
 * few seconds while the view is open, since the consumer moves actions along by itself.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { Badge, Button, Caption1, Link, Spinner, Text, makeStyles, tokens } from "@fluentui/react-components";
import { ArrowClockwiseRegular, CheckmarkRegular, DismissRegular, OpenRegular } from "@fluentui/react-icons";
import { ApiError, type Api } from "../api/http";
import type { ActionDecision, ActionOut, ActionRecord, ActionsOut, Person } from "../api/types";
import { actionDetail, actionReason, automationLabel, canRetry, countsInOrder, kindLabel, statusColor, statusLabel } from "../shared/actions";
import { personLabel } from "../shared/identity";
import { percent } from "../shared/result";
import { usePane } from "./context";
import { IdentityNotice } from "./IdentityNotice";
import { ProblemBar } from "./ProblemBar";
import { confidenceColor } from "./ResultView";
import { useStyles } from "./styles";

const REFRESH_MS = 3_000;
const RECENT = 30;

const useLocal = makeStyles({
  counts: { display: "flex", flexWrap: "wrap", gap: tokens.spacingHorizontalXS },
  list: { margin: 0, padding: 0, listStyleType: "none", display: "flex", flexDirection: "column", gap: tokens.spacingVerticalS },
  head: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalS },
});

interface Lists {
  pending: ActionRecord[];
  recent: ActionRecord[];
  counts: Record<string, number>;
}

async function loadLists(api: Api, signal?: AbortSignal): Promise<Lists> {
  const [waiting, latest] = await Promise.all([
    api.get<ActionsOut>("/v1/actions?status=pending&limit=100", signal),
    api.get<ActionsOut>(`/v1/actions?limit=${RECENT}`, signal),
  ]);
  return {
    pending: waiting.actions,
    recent: latest.actions.filter((a) => a.status !== "pending_review"),
    counts: latest.counts,
  };
}

function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

function ActionCard({ action, approver, focused, onDecided }: {
  /** null: the pane does not know who the user is, so it cannot decide (IdentityNotice says why). */
  action: ActionRecord; approver: Person | null; focused: boolean; onDecided(updated: ActionRecord | null, note: string): void;
}) {
  const { api } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const pending = action.status === "pending_review";
  const reason = actionReason(action);
  const link = typeof action.effect?.detail?.webLink === "string" ? action.effect.detail.webLink : null;

  const retryable = canRetry(action);
  const done: Record<"approve" | "reject" | "retry", (a: ActionRecord) => string> = {
    approve: (a) => `Approved “${action.title}”: it is ${statusLabel(a.status).toLowerCase()}.`,
    reject: () => `Rejected “${action.title}”.`,
    retry: (a) => `Trying “${action.title}” again: it is ${statusLabel(a.status).toLowerCase()}.`,
  };

  const decide = async (verb: "approve" | "reject" | "retry") => {
    if (!approver) return;
    setSending(true);
    setError(null);
    try {
      const body: ActionDecision = { reviewer: approver };
      const out = await api.post<ActionOut>(`/v1/actions/${encodeURIComponent(action.id)}/${verb}`, body);
      onDecided(out.action, done[verb](out.action));
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError("server", String(e));
      if (err.status === 409) onDecided(null, verb === "retry" ? "Someone already retried that one." : "Someone already decided that one.");
      else setError(err);
    } finally {
      setSending(false);
    }
  };

  return (
    <li className={`${styles.itemCard} ${focused ? styles.focused : ""}`} data-testid={pending ? "pending-action" : "recent-action"}
      data-status={action.status} data-action-id={action.id} aria-label={`${kindLabel(action.kind)}: ${action.title}`}>
      <div className={local.head}>
        <Text weight="semibold" size={200} className={styles.grow}>{kindLabel(action.kind)}</Text>
        {pending && action.confidence !== null && (
          <Badge size="small" appearance="tint" color={confidenceColor(action.confidence)}>{percent(action.confidence)}</Badge>
        )}
        <Badge size="small" appearance="tint" color={statusColor(action.status)} data-testid="action-status">{statusLabel(action.status)}</Badge>
      </div>
      <Text size={300}>{action.title}</Text>
      {actionDetail(action) && actionDetail(action) !== action.title && <Caption1>{actionDetail(action)}</Caption1>}
      {reason && <Caption1 data-testid="action-reason">{pending ? "Why it waits" : "Why"}: {reason}</Caption1>}
      <Caption1 className={styles.muted}>
        {automationLabel(action.automation)}
        {action.approval ? ` · approved by ${action.approval}` : ""}
        {when(action.executedAt ?? action.updatedAt) ? ` · ${when(action.executedAt ?? action.updatedAt)}` : ""}
        {link && <> · <Link href={link} target="_blank" rel="noopener">Open<OpenRegular aria-hidden style={{ marginLeft: 2, verticalAlign: "middle" }} /></Link></>}
      </Caption1>
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} />}
      {pending && (
        <div className={styles.row}>
          <Button size="small" appearance="primary" icon={<CheckmarkRegular />} disabled={sending || !approver} onClick={() => void decide("approve")}>Approve</Button>
          <Button size="small" icon={<DismissRegular />} disabled={sending || !approver} onClick={() => void decide("reject")}>Reject</Button>
        </div>
      )}
      {retryable && (
        <div className={styles.row}>
          <Button size="small" icon={<ArrowClockwiseRegular />} disabled={sending || !approver} onClick={() => void decide("retry")}
            data-testid="retry-action">Try again</Button>
        </div>
      )}
    </li>
  );
}

export function ActionsView() {
  const { api, identity, focus } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const [lists, setLists] = useState<Lists | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const generation = useRef(0);
  const approver = identity?.person ?? null;

  const load = useCallback(() => {
    const mine = ++generation.current; // an older answer arriving late never overwrites a newer one
    loadLists(api).then(
      (next) => { if (mine === generation.current) { setLists(next); setError(null); } },
      (e: unknown) => { if (mine === generation.current) setError(e instanceof ApiError ? e : new ApiError("server", String(e))); },
    );
  }, [api]);

  useEffect(() => {
    load();
    // No refresh once the token is refused: every call would fail unsent (the banner says to reopen).
    const timer = setInterval(() => { if (document.visibilityState !== "hidden" && !api.refused) load(); }, REFRESH_MS);
    return () => { clearInterval(timer); generation.current++; };
  }, [api, load]);

  const decided = (updated: ActionRecord | null, note: string) => {
    setNotice(note);
    if (updated) {
      setLists((l) => l && {
        ...l,
        pending: l.pending.filter((a) => a.id !== updated.id),
        recent: [updated, ...l.recent.filter((a) => a.id !== updated.id)],
      });
    }
    load();
  };
  const counts = lists ? countsInOrder(lists.counts) : [];

  return (
    <div className={styles.section} data-testid="actions">
      <div className={styles.row}>
        <Text className={styles.grow}>
          {lists === null ? "" : lists.pending.length === 0 ? "Nothing waits for approval." : `${lists.pending.length} waiting for approval`}
        </Text>
        <Button size="small" appearance="subtle" icon={<ArrowClockwiseRegular />} onClick={load}>Refresh</Button>
      </div>
      {counts.length > 0 && (
        <div className={local.counts} data-testid="action-counts" aria-label="Actions by status">
          {counts.map((c) => (
            <Badge key={c.status} appearance="outline" color={statusColor(c.status)} data-status={c.status}>{c.count} {c.label.toLowerCase()}</Badge>
          ))}
        </div>
      )}
      {approver
        ? <Caption1 className={styles.muted} data-testid="approver">You approve as {personLabel(approver)}.</Caption1>
        : <IdentityNotice doing="Approving, rejecting or retrying an action" />}
      {notice && <Caption1 role="status" data-testid="actions-notice">{notice}</Caption1>}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} onRetry={load} />}
      {lists === null && !error && <Spinner size="tiny" label="Loading actions…" />}

      {lists && lists.pending.length > 0 && (
        <>
          <h2 className={styles.sectionTitle}>Waiting for approval</h2>
          <ul className={local.list} aria-label="Waiting for approval">
            {lists.pending.map((a) => (
              <ActionCard key={a.id} action={a} approver={approver} focused={a.id === focus} onDecided={decided} />
            ))}
          </ul>
        </>
      )}
      {lists && lists.recent.length > 0 && (
        <>
          <h2 className={styles.sectionTitle}>Recent</h2>
          <ul className={local.list} aria-label="Recent actions">
            {lists.recent.map((a) => (
              <ActionCard key={a.id} action={a} approver={approver} focused={a.id === focus} onDecided={decided} />
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
