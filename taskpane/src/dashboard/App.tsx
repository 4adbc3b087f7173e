/**
 * The dashboard page: live (fetched from the server with the token, a period to choose, one view per tab,
 * "Verify now") or an auditor's report (the data embedded in the file, every view one after another, no
 * controls, nothing fetched).
 */
import {
  Body1,
  Button,
  Caption1,
  Dropdown,
  FluentProvider,
  makeStyles,
  MessageBar,
  MessageBarBody,
  Option,
  Spinner,
  Tab,
  TabList,
  Title1,
  tokens,
  webLightTheme,
} from "@fluentui/react-components";
import { useCallback, useEffect, useState } from "react";
import type { Api } from "../api/http";
import { ApiError } from "../api/http";
import type { Bucket, Dashboard, Verification } from "./data";
import { formatTime } from "./data";
import { ChainView, CostView, DriftView, LatencyView, QualityView, SloView } from "./views";

const useStyles = makeStyles({
  page: { maxWidth: "1040px", margin: "0 auto", padding: "20px", display: "flex", flexDirection: "column", gap: "16px" },
  header: { display: "flex", alignItems: "center", gap: "12px", flexWrap: "wrap" },
  grow: { flexGrow: 1 },
  muted: { color: tokens.colorNeutralForeground3 },
});

export const VIEWS = [
  { id: "slo", label: "SLOs" },
  { id: "latency", label: "Latency" },
  { id: "cost", label: "Cost" },
  { id: "quality", label: "Review" },
  { id: "drift", label: "Drift" },
  { id: "chain", label: "Chain" },
] as const;
type ViewId = (typeof VIEWS)[number]["id"];

export const PERIODS = [
  { label: "Last 24 hours", hours: 24, bucket: "hour" },
  { label: "Last 7 days", hours: 24 * 7, bucket: "hour" },
  { label: "Last 30 days", hours: 24 * 30, bucket: "day" },
  { label: "Last 90 days", hours: 24 * 90, bucket: "day" },
] as const satisfies readonly { label: string; hours: number; bucket: Bucket }[];

function View({ id, data, verify }: { id: ViewId; data: Dashboard; verify?: Parameters<typeof ChainView>[0]["verify"] }) {
  switch (id) {
    case "slo":
      return <SloView data={data} />;
    case "latency":
      return <LatencyView data={data} />;
    case "cost":
      return <CostView data={data} />;
    case "quality":
      return <QualityView data={data} />;
    case "drift":
      return <DriftView data={data} />;
    case "chain":
      return <ChainView data={data} verify={verify} />;
  }
}

/** The auditor's report: every view, in order, from the embedded data. */
export function Report({ data }: { data: Dashboard }) {
  const styles = useStyles();
  return (
    <FluentProvider theme={webLightTheme}>
      <main className={styles.page} data-testid="report">
        <header>
          <Title1 as="h1" block>
            Deskpilot audit report
          </Title1>
          <Body1 as="p" block>
            From {formatTime(data.since)} to {formatTime(data.until)} UTC, by {data.bucket}. Generated {formatTime(data.generatedAt)} UTC from the lineage
            database; it reads nothing else and sends nothing.
          </Body1>
        </header>
        {VIEWS.map((v) => (
          <View key={v.id} id={v.id} data={data} />
        ))}
      </main>
    </FluentProvider>
  );
}

function problemText(error: unknown): string {
  if (error instanceof ApiError && error.kind === "unauthorized") {
    return "This page needs Deskpilot's access token: open it with `deskpilot dashboard`, whose link carries it.";
  }
  return error instanceof Error ? error.message : String(error);
}

/** The live dashboard: fetches `/v1/dashboard` for the chosen period. */
export function LiveDashboard({ api }: { api: Api }) {
  const styles = useStyles();
  const [period, setPeriod] = useState<number>(1); // the last 7 days, by hour
  const [view, setView] = useState<ViewId>("slo");
  const [data, setData] = useState<Dashboard | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [verifying, setVerifying] = useState(false);
  const [verified, setVerified] = useState<Verification | null>(null);

  const load = useCallback(async () => {
    const { hours, bucket } = PERIODS[period];
    const since = new Date(Date.now() - hours * 3_600_000).toISOString();
    try {
      setData(await api.get<Dashboard>(`/v1/dashboard?since=${encodeURIComponent(since)}&bucket=${bucket}`));
      setError(null);
    } catch (e) {
      setError(problemText(e));
    }
  }, [api, period]);

  useEffect(() => {
    void load();
  }, [load]);

  const onVerify = useCallback(async () => {
    setVerifying(true);
    try {
      setVerified(await api.post<Verification>("/v1/audit/verify", {}));
      await load();
    } catch (e) {
      setError(problemText(e));
    } finally {
      setVerifying(false);
    }
  }, [api, load]);

  return (
    <FluentProvider theme={webLightTheme}>
      <main className={styles.page} data-testid="dashboard">
        <header className={styles.header}>
          <Title1 as="h1" className={styles.grow}>
            Deskpilot dashboard
          </Title1>
          <Dropdown
            className="no-print"
            aria-label="Period"
            value={PERIODS[period].label}
            selectedOptions={[String(period)]}
            onOptionSelect={(_, d) => setPeriod(Number(d.optionValue))}
          >
            {PERIODS.map((p, i) => (
              <Option key={p.label} value={String(i)}>
                {p.label}
              </Option>
            ))}
          </Dropdown>
          <Button className="no-print" onClick={() => void load()}>
            Refresh
          </Button>
        </header>
        {error && (
          <MessageBar intent="error" data-testid="dashboard-error">
            <MessageBarBody>{error}</MessageBarBody>
          </MessageBar>
        )}
        {verified && (
          <MessageBar intent={verified.ok ? "success" : "error"} data-testid="verify-result">
            <MessageBarBody>
              {verified.ok ? "Every chain is intact." : `The chain was tampered with: ${verified.problems.join("; ")}`}
            </MessageBarBody>
          </MessageBar>
        )}
        <TabList selectedValue={view} onTabSelect={(_, d) => setView(d.value as ViewId)} className="no-print">
          {VIEWS.map((v) => (
            <Tab key={v.id} value={v.id}>
              {v.label}
            </Tab>
          ))}
        </TabList>
        {data ? (
          <>
            <Caption1 className={styles.muted}>
              From {formatTime(data.since)} to {formatTime(data.until)} UTC, by {data.bucket}.
            </Caption1>
            <View id={view} data={data} verify={{ busy: verifying, onVerify: () => void onVerify() }} />
          </>
        ) : (
          !error && <Spinner label="Reading the lineage database…" />
        )}
      </main>
    </FluentProvider>
  );
}
