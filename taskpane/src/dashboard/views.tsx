/**
 * The dashboard's views, each a section that reads only the Dashboard document: the live page shows one at
 * a time (tabs), the auditor's report all of them in order. What a view shows is said in its heading.
 */
import {
  Badge,
  Body1,
  Button,
  Caption1,
  makeStyles,
  Spinner,
  Table,
  TableBody,
  TableCell,
  TableHeader,
  TableHeaderCell,
  TableRow,
  Title3,
  tokens,
} from "@fluentui/react-components";
import type { ReactNode } from "react";
import { LineChart, StackedBarChart } from "./charts";
import type { Dashboard, GovernanceEvent, Slo } from "./data";
import {
  costTotals,
  driftSeries,
  eventSummary,
  formatCost,
  formatMs,
  formatNumber,
  formatShare,
  formatTime,
  latencySeries,
  latestDrift,
  perProfile,
  qualitySeries,
  shortHash,
  verifiedHeads,
} from "./data";

const useStyles = makeStyles({
  section: {
    background: tokens.colorNeutralBackground1,
    border: `1px solid ${tokens.colorNeutralStroke2}`,
    borderRadius: tokens.borderRadiusMedium,
    padding: "16px 20px",
    display: "flex",
    flexDirection: "column",
    gap: "12px",
  },
  cards: { display: "flex", flexWrap: "wrap", gap: "12px" },
  card: { border: `1px solid ${tokens.colorNeutralStroke2}`, borderRadius: tokens.borderRadiusMedium, padding: "12px 16px", minWidth: "260px", flex: "1 1 260px" },
  figure: { fontSize: tokens.fontSizeHero700, fontWeight: tokens.fontWeightSemibold, lineHeight: tokens.lineHeightHero700 },
  mono: { fontFamily: tokens.fontFamilyMonospace, fontSize: tokens.fontSizeBase200, wordBreak: "break-all" },
  row: { display: "flex", alignItems: "center", gap: "12px", flexWrap: "wrap" },
});

function Section({ id, title, note, children }: { id: string; title: string; note?: string; children: ReactNode }) {
  const styles = useStyles();
  return (
    <section className={styles.section} data-testid={`view-${id}`} aria-labelledby={`h-${id}`}>
      <Title3 as="h2" id={`h-${id}`}>
        {title}
      </Title3>
      {note && <Caption1>{note}</Caption1>}
      {children}
    </section>
  );
}

function SloCard({ slo }: { slo: Slo }) {
  const styles = useStyles();
  const met = slo.value === null ? null : slo.value >= slo.objective;
  return (
    <div className={styles.card} data-testid={`slo-${slo.name}`}>
      <Body1>{slo.description}</Body1>
      <div className={styles.row}>
        <span className={styles.figure}>{formatShare(slo.value, 2)}</span>
        <Badge appearance="filled" color={met === null ? "subtle" : met ? "success" : "danger"}>
          {met === null ? "no data" : met ? "objective met" : "objective missed"}
        </Badge>
      </div>
      <Caption1>
        Objective {formatShare(slo.objective, 1)} · {slo.good} of {slo.total} good · error budget left{" "}
        {formatShare(slo.budgetRemaining, 0)}
      </Caption1>
    </div>
  );
}

export function SloView({ data }: { data: Dashboard }) {
  const styles = useStyles();
  return (
    <Section id="slo" title="Service level objectives" note={`From ${formatTime(data.slo.since)} to ${formatTime(data.slo.until)} (UTC).`}>
      <div className={styles.cards}>
        <SloCard slo={data.slo.workflowAvailability} />
        <SloCard slo={data.slo.syncLatency} />
      </div>
    </Section>
  );
}

export function LatencyView({ data }: { data: Dashboard }) {
  const runs = data.latency.reduce((n, p) => n + p.runs, 0);
  return (
    <Section id="latency" title="Latency" note={`Time to first token and total time of ${runs} answered runs (not cache hits), p50 and p95 per ${data.bucket}.`}>
      <LineChart title="Latency" series={latencySeries(data)} format={formatMs} bucket={data.bucket} testId="chart-latency" />
    </Section>
  );
}

export function CostView({ data }: { data: Dashboard }) {
  const totals = [...costTotals(data).entries()].sort(([a], [b]) => a.localeCompare(b));
  return (
    <Section id="cost" title="Cost and tokens" note={`Per model profile and ${data.bucket}; the embedded model costs nothing.`}>
      <StackedBarChart title="Cost" series={perProfile(data, (p) => p.cost)} format={formatCost} bucket={data.bucket} testId="chart-cost" />
      <LineChart title="Tokens out" series={perProfile(data, (p) => p.tokensOut)} format={formatNumber} bucket={data.bucket} testId="chart-tokens" />
      <Table size="small" aria-label="Totals per profile">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Profile</TableHeaderCell>
            <TableHeaderCell>Runs</TableHeaderCell>
            <TableHeaderCell>Tokens in</TableHeaderCell>
            <TableHeaderCell>Tokens out</TableHeaderCell>
            <TableHeaderCell>Cost</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {totals.map(([profile, t]) => (
            <TableRow key={profile}>
              <TableCell>{profile}</TableCell>
              <TableCell>{t.runs}</TableCell>
              <TableCell>{t.tokensIn}</TableCell>
              <TableCell>{t.tokensOut}</TableCell>
              <TableCell>{formatCost(t.cost)}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </Section>
  );
}

export function QualityView({ data }: { data: Dashboard }) {
  const structured = data.quality.reduce((n, p) => n + p.structured, 0);
  const queued = data.quality.reduce((n, p) => n + p.queued, 0);
  const decided = data.quality.reduce((n, p) => n + p.decided, 0);
  const overridden = data.quality.reduce((n, p) => n + p.overridden, 0);
  return (
    <Section
      id="quality"
      title="Review and override rates"
      note="Review rate: structured results sent to a person. Override rate: decisions that rejected or changed the result."
    >
      <Body1 data-testid="quality-totals">
        {queued} of {structured} structured results reviewed ({formatShare(structured ? queued / structured : null)}); {overridden} of {decided} decisions
        overrode the model ({formatShare(decided ? overridden / decided : null)}).
      </Body1>
      <LineChart title="Review and override rates" series={qualitySeries(data)} format={(v) => formatShare(v, 0)} bucket={data.bucket} testId="chart-quality" yMax={1} />
    </Section>
  );
}

function EventTable({ events, label, testId }: { events: GovernanceEvent[]; label: string; testId: string }) {
  const styles = useStyles();
  if (events.length === 0) return <Caption1 data-testid={`${testId}-empty`}>No {label} in this period.</Caption1>;
  return (
    <Table size="small" aria-label={label} data-testid={testId}>
      <TableHeader>
        <TableRow>
          <TableHeaderCell>When (UTC)</TableHeaderCell>
          <TableHeaderCell>Event</TableHeaderCell>
          <TableHeaderCell>By</TableHeaderCell>
          <TableHeaderCell>Details</TableHeaderCell>
        </TableRow>
      </TableHeader>
      <TableBody>
        {events.map((e) => (
          <TableRow key={e.hash}>
            <TableCell>{formatTime(e.at)}</TableCell>
            <TableCell>{e.kind}</TableCell>
            <TableCell>{e.actor}</TableCell>
            <TableCell className={styles.mono} title={JSON.stringify(e.details)}>
              {eventSummary(e.details)}
            </TableCell>
          </TableRow>
        ))}
      </TableBody>
    </Table>
  );
}

export function DriftView({ data }: { data: Dashboard }) {
  const latest = latestDrift(data.driftChecks);
  const alarms = latest.filter((c) => c.alarm).length;
  return (
    <Section
      id="drift"
      title="Drift"
      note={`${data.driftChecks.length} checks of ${latest.length} signals in this period; ${alarms} in alarm at their last check. Each signal is drawn as a share of its threshold: 1 or more is an alarm.`}
    >
      <LineChart title="Drift signals" series={driftSeries(data.driftChecks)} format={formatNumber} bucket={data.bucket} testId="chart-drift" />
      {latest.length > 0 && (
        <Table size="small" aria-label="Latest drift checks" data-testid="drift-latest">
          <TableHeader>
            <TableRow>
              <TableHeaderCell>Task</TableHeaderCell>
              <TableHeaderCell>Signal</TableHeaderCell>
              <TableHeaderCell>Value</TableHeaderCell>
              <TableHeaderCell>Threshold</TableHeaderCell>
              <TableHeaderCell>State</TableHeaderCell>
              <TableHeaderCell>Checked (UTC)</TableHeaderCell>
            </TableRow>
          </TableHeader>
          <TableBody>
            {latest.map((c) => (
              <TableRow key={`${c.task} ${c.signal}`}>
                <TableCell>{c.task}</TableCell>
                <TableCell>{c.signal}</TableCell>
                <TableCell>{formatNumber(c.value)}</TableCell>
                <TableCell>{formatNumber(c.threshold)}</TableCell>
                <TableCell>
                  <Badge appearance="tint" color={c.alarm ? "danger" : "success"}>
                    {c.alarm ? "alarm" : "ok"}
                  </Badge>
                </TableCell>
                <TableCell>{formatTime(c.at)}</TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
      <EventTable events={data.driftEvents} label="drift alarms" testId="drift-events" />
    </Section>
  );
}

export interface VerifyControl {
  busy: boolean;
  onVerify: () => void;
}

export function ChainView({ data, verify }: { data: Dashboard; verify?: VerifyControl }) {
  const styles = useStyles();
  const last = data.chain.lastVerification;
  const upToDate = verifiedHeads(data);
  const ok = last ? last.details["ok"] === true : null;
  return (
    <Section id="chain" title="Audit chain and retention" note="The head of each hash chain now, and the last time every hash was re-derived.">
      <div className={styles.row} data-testid="last-verification">
        <Badge appearance="filled" color={ok === null ? "subtle" : ok ? "success" : "danger"}>
          {ok === null ? "never verified" : ok ? "intact" : "tampered"}
        </Badge>
        <Body1>{last ? `Last verified ${formatTime(last.at)} UTC by ${last.actor}.` : "No verification recorded yet."}</Body1>
        {verify && (
          <Button className="no-print" appearance="primary" disabled={verify.busy} onClick={verify.onVerify} icon={verify.busy ? <Spinner size="tiny" /> : undefined}>
            Verify now
          </Button>
        )}
      </div>
      <Table size="small" aria-label="Chain heads" data-testid="chain-heads">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Chain</TableHeaderCell>
            <TableHeaderCell>Rows</TableHeaderCell>
            <TableHeaderCell>Head hash</TableHeaderCell>
            <TableHeaderCell>Since the last verification</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {data.chain.heads.map((h) => (
            <TableRow key={h.chain}>
              <TableCell>{h.chain}</TableCell>
              <TableCell>{h.rows}</TableCell>
              <TableCell className={styles.mono} title={h.headHash ?? ""}>
                {shortHash(h.headHash)}
              </TableCell>
              <TableCell>{!last ? "–" : upToDate.get(h.chain) ? "unchanged" : "grew"}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
      <Title3 as="h3">Retention, erasure and legal holds</Title3>
      {data.retention && <RetentionPolicy retention={data.retention} />}
      <EventTable events={data.governance} label="retention, erasure or legal hold events" testId="governance-events" />
    </Section>
  );
}

const KINDS: [string, string][] = [
  ["inputs", "Inputs (what runs read)"],
  ["outputs", "Outputs and review decisions"],
  ["examples", "Examples learnt from corrections"],
  ["synced", "Synced mail, events and files"],
];

/** How long each kind of personal data is kept, whether a legal hold suspends purging, and the last purge. */
function RetentionPolicy({ retention }: { retention: NonNullable<Dashboard["retention"]> }) {
  const styles = useStyles();
  return (
    <div data-testid="retention-policy">
      <div className={styles.row}>
        <Badge appearance="filled" color={retention.hold ? "warning" : "subtle"}>
          {retention.hold ? "legal hold" : "no legal hold"}
        </Badge>
        <Body1>
          {retention.hold
            ? `Purging and erasure are suspended since ${formatTime(retention.hold.since)} UTC (${retention.hold.reason}, set by ${retention.hold.actor}).`
            : retention.lastPurgeAt
              ? `Last purge ${formatTime(retention.lastPurgeAt)} UTC.`
              : "No purge recorded yet."}
        </Body1>
      </div>
      <Table size="small" aria-label="Retention policy">
        <TableHeader>
          <TableRow>
            <TableHeaderCell>Data</TableHeaderCell>
            <TableHeaderCell>Kept</TableHeaderCell>
          </TableRow>
        </TableHeader>
        <TableBody>
          {KINDS.map(([kind, label]) => {
            const days = retention.policy[kind];
            return (
              <TableRow key={kind}>
                <TableCell>{label}</TableCell>
                <TableCell>{days === null || days === undefined ? "for ever" : `${days} day${days === 1 ? "" : "s"}`}</TableCell>
              </TableRow>
            );
          })}
        </TableBody>
      </Table>
    </div>
  );
}
