/** Status: the server, its model and queue, the document index, Microsoft 365 sync per scope, what this
 * Office can do, and a warning while a task's inputs or results have drifted from what they were at first. */
import { useEffect, useState } from "react";
import { Badge, Button, Caption1, MessageBar, MessageBarBody, MessageBarTitle, makeStyles, tokens } from "@fluentui/react-components";
import { ArrowClockwiseRegular } from "@fluentui/react-icons";
import type { DriftReport, IndexStatus, ScopeOut, SkippedFile, SyncStatus } from "../api/types";
import { driftLines } from "../shared/drift";
import { scopeLine, scopeTag, skippedLine, sortedScopes } from "../shared/sync";
import { usePane } from "./context";
import { useStyles } from "./styles";

const useLocal = makeStyles({
  list: { margin: 0, display: "grid", gridTemplateColumns: "auto 1fr", columnGap: tokens.spacingHorizontalM, rowGap: tokens.spacingVerticalXS },
  dt: { color: tokens.colorNeutralForeground3 },
  dd: { margin: 0, overflowWrap: "anywhere" },
  skipped: { margin: 0, paddingLeft: tokens.spacingHorizontalL },
  scopes: { margin: 0, padding: 0, listStyleType: "none", display: "grid", rowGap: tokens.spacingVerticalS },
  scopeName: { fontWeight: tokens.fontWeightSemibold, overflowWrap: "anywhere" },
  summary: { cursor: "pointer" },
});

const SKIP_REASONS: Record<SkippedFile["reason"], string> = {
  empty: "empty file",
  binary: "not a text document",
  corrupt: "damaged file",
  encrypted: "password protected",
  no_text: "no text in it (scanned?)",
  too_large: "too large",
  unreadable: "could not be read",
  unsupported: "file type not supported",
  not_found: "not found (moved or deleted?)",
};

/** One sync scope: its name and kind, its state line, and its skipped files behind "N skipped". */
function SyncScope({ scope, now }: { scope: ScopeOut; now: Date }) {
  const s = useLocal();
  const styles = useStyles();
  const count = scope.skippedCount ?? 0;
  const tag = scopeTag(scope);
  return (
    <li data-testid="sync-scope" data-scope={scope.scope}>
      <div className={s.scopeName}>{scope.name} {tag && <Caption1 className={styles.muted}>{tag}</Caption1>}</div>
      <Caption1 data-testid="sync-scope-state">{scopeLine(scope, now)}</Caption1>
      {count > 0 && (
        <details data-testid="sync-skipped">
          <summary className={s.summary}>{count} skipped</summary>
          <ul className={s.skipped}>
            {(scope.skipped ?? []).map((item) => <li key={item.name}>{skippedLine(item, now)}</li>)}
            {count > (scope.skipped?.length ?? 0) && <li>and {count - (scope.skipped?.length ?? 0)} more</li>}
          </ul>
        </details>
      )}
    </li>
  );
}

/** The drift warning: nothing while all is well (or drift is unknown), one line per drift in alarm. */
function DriftBanner({ report, now }: { report: DriftReport | null; now: Date }) {
  const lines = report ? driftLines(report, now) : [];
  if (!report || lines.length === 0) return null;
  return (
    <MessageBar intent="warning" layout="multiline" data-testid="drift-banner">
      <MessageBarBody>
        <MessageBarTitle>Results may be less reliable</MessageBarTitle>
        {lines.map((line) => <div key={line}>{line}</div>)}
        <div>Compared with each task's first {report.referenceSize} requests; check a few results by hand.</div>
      </MessageBarBody>
    </MessageBar>
  );
}

function Row({ name, children }: { name: string; children: React.ReactNode }) {
  const s = useLocal();
  return (
    <>
      <dt className={s.dt}>{name}</dt>
      <dd className={s.dd}>{children}</dd>
    </>
  );
}

export function StatusView() {
  const { api, server, host } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const [index, setIndex] = useState<IndexStatus | null>(null);
  const [sync, setSync] = useState<SyncStatus | null>(null);
  const [drift, setDrift] = useState<DriftReport | null>(null);
  const model = server.models?.models[0];

  useEffect(() => {
    api.get<IndexStatus>("/v1/index/status").then(setIndex, () => setIndex(null));
    api.get<SyncStatus>("/v1/sync/status").then(setSync, () => setSync(null));
    api.get<DriftReport>("/v1/drift").then(setDrift, () => setDrift(null));
  }, [api, server.checkedAt]);

  const state = server.reach !== "ok" ? server.reach : server.health?.model ?? "checking";
  const color = state === "ready" ? "success" : state === "loading" || state === "checking" ? "informative" : "danger";
  return (
    <div className={styles.section}>
      <DriftBanner report={drift} now={new Date()} />
      <div className={styles.row}>
        <h2 className={`${styles.sectionTitle} ${styles.grow}`}>Server</h2>
        <Button size="small" appearance="subtle" icon={<ArrowClockwiseRegular />} onClick={server.refresh}>Refresh</Button>
      </div>
      <dl className={local.list} data-testid="status">
        <Row name="Address">{api.base}</Row>
        <Row name="State"><Badge appearance="tint" color={color}>{state === "unreachable" ? "not reachable" : state === "unauthorized" ? "needs reopening" : state}</Badge></Row>
        {server.health && <Row name="Version">{server.health.version}</Row>}
        {model && <Row name="Model">{model.id}</Row>}
        {model && <Row name="Backend">{model.backend}, {model.contextLength.toLocaleString()} tokens context</Row>}
        {model && <Row name="Weights"><span title={model.weightsDigest}>{model.weightsDigest.slice(0, 19)}…</span></Row>}
        {server.models?.error && <Row name="Error">{server.models.error}</Row>}
        {server.models && (
          <Row name="Queue">
            {server.models.busy ? "answering" : "idle"}, {server.models.waiting} waiting (room for {server.models.maxWaiting})
          </Row>
        )}
        <Row name="Index">
          {index
            ? `${index.documents.toLocaleString()} documents, ${index.chunks.toLocaleString()} passages${index.embedderReady ? "" : " (search model loading)"}`
            : "…"}
        </Row>
        {index?.indexing && (
          <Row name="Indexing">{index.indexing.phase}: {index.indexing.filesDone ?? 0} of {index.indexing.filesTotal ?? "?"} files</Row>
        )}
        {index && (index.skipped?.length ?? 0) > 0 && (
          <Row name="Skipped">
            <ul className={local.skipped}>
              {index.skipped!.slice(0, 20).map((f) => (
                <li key={f.path} title={f.detail || undefined}>{f.path.split(/[\\/]/).pop()}: {SKIP_REASONS[f.reason] ?? f.reason}</li>
              ))}
            </ul>
          </Row>
        )}
        <Row name="Network">{server.online ? "online" : "offline (Deskpilot itself still works)"}</Row>
        <Row name="Office">
          {host.kind === "outlook" ? `Outlook, ${host.mode === "read" ? "reading" : "writing"} a message${host.canCategorize ? "" : " (no categories: Mailbox 1.8 missing)"}`
            : host.kind === "word" ? `Word${host.canTrackChanges ? "" : " (no tracked changes from add-ins: WordApi 1.4 missing)"}`
            : "not running inside Office"}
        </Row>
      </dl>
      {sync?.configured && (
        <>
          <h2 className={styles.sectionTitle}>Microsoft 365</h2>
          <Caption1 data-testid="sync-summary">
            {!sync.signedIn ? "not signed in (run deskpilot login on this computer)"
              : sync.running ? `syncing ${sync.progress?.scope || ""}…` : `signed in as ${sync.account ?? "?"}`}
          </Caption1>
          {(sync.scopes?.length ?? 0) > 0 && (
            <ul className={local.scopes} data-testid="sync-scopes">
              {sortedScopes(sync.scopes ?? []).map((scope) => <SyncScope key={scope.scope} scope={scope} now={new Date()} />)}
            </ul>
          )}
        </>
      )}
      {server.checkedAt && <Caption1 className={styles.muted}>Checked {server.checkedAt.toLocaleTimeString()}</Caption1>}
    </div>
  );
}
