/**
 * Settings → Automations: each automation's kill switch and, per kind of action, whether a person
 * approves it. These live on the server (PUT /v1/automations/{name}) and apply to the next proposal or
 * trigger without a restart; switching one off also holds its queued actions until it is switched on.
 *
 * Every change names the person who makes it (the pane's identity; without one the controls are off and
 * say where to enter it). A change that loosens approval (a kind asked about less often, a lower
 * threshold) is refused by the server until a person confirms it (409 `confirmation_required`, saying what
 * would loosen): the pane asks, and sends it again with `confirmLoosening` only if the person confirms;
 * cancelling leaves everything as it was. Where IT does not allow loosening (403 `loosening_forbidden`),
 * the pane says so.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import {
  Button, Caption1, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Field, Select, Spinner,
  Switch, Text, makeStyles, tokens,
} from "@fluentui/react-components";
import { ApiError } from "../api/http";
import type { ApprovalMode, Automation, AutomationOut, AutomationPut, AutomationsOut, Person } from "../api/types";
import {
  APPROVAL_MODES, approvalRows, approvalUpdate, automationLabel, confirmedUpdate, enabledUpdate, loosenedChanges,
} from "../shared/actions";
import { percent } from "../shared/result";
import { usePane } from "./context";
import { IdentityNotice } from "./IdentityNotice";
import { ProblemBar } from "./ProblemBar";
import { useStyles } from "./styles";

const useLocal = makeStyles({
  head: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalS },
  switch: { flexShrink: 0 },
  // minmax(0, 1fr): the selects shrink to the pane's width instead of pushing it wider.
  grid: { display: "grid", gridTemplateColumns: "repeat(2, minmax(0, 1fr))", gap: `${tokens.spacingVerticalXS} ${tokens.spacingHorizontalS}` },
  changes: { margin: `${tokens.spacingVerticalS} 0`, paddingLeft: tokens.spacingHorizontalL },
});

/** A change the server held back until a person confirms that it loosens approval. */
interface Loosening {
  update: AutomationPut;
  /** The server's message, which says what would loosen. */
  message: string;
}

/** The confirmation step: what would loosen, in words; confirm sends it again, cancel drops it. */
function ConfirmLoosening({ label, loosening, onConfirm, onCancel }: {
  label: string; loosening: Loosening | null; onConfirm(): void; onCancel(): void;
}) {
  const local = useLocal();
  const changes = loosening ? loosenedChanges(loosening.message) : [];
  return (
    <Dialog open={loosening !== null} modalType="alert" onOpenChange={(_, data) => { if (!data.open) onCancel(); }}>
      <DialogSurface data-testid="confirm-loosening">
        <DialogBody>
          <DialogTitle>Ask for approval less often?</DialogTitle>
          <DialogContent>
            <Text block>This change to {label} lets Deskpilot act with less approval by a person:</Text>
            {changes.length > 0
              ? <ul className={local.changes} data-testid="loosened">{changes.map((c) => <li key={c}>{c}</li>)}</ul>
              : <Text block className={local.changes} data-testid="loosened">{loosening?.message}</Text>}
            <Caption1 block>Your name is recorded with the change. Cancel to leave the settings as they are.</Caption1>
          </DialogContent>
          <DialogActions>
            <Button appearance="primary" onClick={onConfirm}>Loosen approval</Button>
            <Button appearance="secondary" onClick={onCancel}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

function AutomationCard({ automation, actor, focused, onSaved }: {
  /** null: the pane does not know who the user is; nothing can be changed (the notice above says why). */
  automation: Automation; actor: Person | null; focused: boolean; onSaved(out: AutomationOut): void;
}) {
  const { api } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [loosening, setLoosening] = useState<Loosening | null>(null);
  const card = useRef<HTMLDivElement>(null);
  const label = automationLabel(automation.name);
  const enabled = automation.enabled !== false;
  const rows = approvalRows(automation);
  useEffect(() => {
    if (focused) card.current?.scrollIntoView?.({ block: "nearest" });
  }, [focused]);

  const save = async (update: AutomationPut) => {
    setSaving(true);
    setError(null);
    try {
      onSaved(await api.put<AutomationOut>(`/v1/automations/${encodeURIComponent(automation.name)}`, update));
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError("server", String(e));
      if (err.code === "confirmation_required" && !update.confirmLoosening) setLoosening({ update, message: err.message });
      else setError(err);
    } finally {
      setSaving(false);
    }
  };
  const confirm = () => {
    if (!loosening) return;
    setLoosening(null);
    void save(confirmedUpdate(loosening.update));
  };
  const locked = saving || !actor || loosening !== null;

  return (
    <div ref={card} role="group" aria-label={label} className={`${styles.itemCard} ${focused ? styles.focused : ""}`}
      data-testid="automation" data-name={automation.name} data-enabled={enabled}>
      <div className={local.head}>
        <Text weight="semibold" className={styles.grow}>{label}</Text>
        {saving && <Spinner size="extra-tiny" aria-label="Saving" />}
        <Switch className={local.switch} checked={enabled} disabled={locked} label={enabled ? "On" : "Off"} labelPosition="before"
          aria-label={`${label} switched on`} onChange={(_, d) => { if (actor) void save(enabledUpdate(d.checked, actor)); }} />
      </div>
      <Caption1 className={styles.muted}>
        {!enabled ? "Switched off: nothing starts, and its queued actions are held."
          : automation.workflow ? "Runs when started from a message or by a mail rule; what needs approval waits in Actions."
          : "What needs approval waits in Actions."}
        {automation.dailyBudget !== null && automation.dailyBudget !== undefined ? ` At most ${automation.dailyBudget} actions a day.` : ""}
      </Caption1>
      <div className={local.grid}>
        {rows.map((row) => (
          <Field key={row.kind} label={row.label} size="small">
            <Select size="small" value={row.mode} disabled={locked} data-kind={row.kind}
              onChange={(_, d) => { if (actor) void save(approvalUpdate(automation, row.kind, d.value as ApprovalMode, actor)); }}>
              {APPROVAL_MODES.map((m) => <option key={m.mode} value={m.mode}>{m.label}</option>)}
            </Select>
          </Field>
        ))}
      </div>
      {rows.some((r) => r.mode === "below_threshold") && (
        <Caption1 className={styles.muted}>“Ask when unsure”: when the confidence is below {percent(automation.threshold ?? 0.8)}.</Caption1>
      )}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} />}
      <ConfirmLoosening label={label} loosening={loosening} onConfirm={confirm} onCancel={() => setLoosening(null)} />
    </div>
  );
}

export function AutomationsSettings() {
  const { api, identity, focus } = usePane();
  const styles = useStyles();
  const [automations, setAutomations] = useState<Automation[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const actor = identity?.person ?? null;

  const load = useCallback(() => {
    setError(null);
    api.get<AutomationsOut>("/v1/automations").then(
      (out) => setAutomations(out.automations),
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError("server", String(e))),
    );
  }, [api]);
  useEffect(load, [load]);

  const saved = (out: AutomationOut) => {
    setAutomations((list) => list?.map((a) => (a.name === out.automation.name ? out.automation : a)) ?? null);
    const label = automationLabel(out.automation.name);
    const released = out.released?.length ?? 0;
    const resumed = out.resumed?.length ?? 0;
    setNotice(`${label} saved.${released ? ` ${released} held action${released === 1 ? "" : "s"} released.` : ""}`
      + `${resumed ? ` ${resumed} paused workflow${resumed === 1 ? "" : "s"} resumed.` : ""}`);
  };

  return (
    <section className={styles.section} aria-labelledby="automations-title" data-testid="automations">
      <h2 id="automations-title" className={styles.sectionTitle}>Automations</h2>
      <Caption1 className={styles.muted}>What Deskpilot may do by itself. Changes apply at once, on this computer's Deskpilot.</Caption1>
      {!actor && <IdentityNotice doing="Changing an automation" inSettings />}
      {notice && <Caption1 role="status" data-testid="automations-notice">{notice}</Caption1>}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} onRetry={load} />}
      {automations === null && !error && <Spinner size="tiny" label="Loading automations…" />}
      {automations?.map((a) => (
        <AutomationCard key={a.name} automation={a} actor={actor} focused={a.name === focus} onSaved={saved} />
      ))}
    </section>
  );
}
