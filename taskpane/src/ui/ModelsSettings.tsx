/**
 * Settings → Models: the model profiles (where each runs, its state, what a remote one does with personal
 * data, its prices, why it is skipped for now), which profile each task uses and which take over when it
 * fails, and the use today and this month against the budgets (GET /v1/models, GET /v1/usage).
 *
 * Read-only: IT changes profiles and routes on the computer with `deskpilot models use` (config.toml),
 * and the hint line says so. Cards and lists, not tables, so it reads at Office's narrowest pane (320 px).
 */
import { useCallback, useEffect, useState } from "react";
import { Badge, Button, Caption1, ProgressBar, Spinner, Text, makeStyles, tokens } from "@fluentui/react-components";
import { ArrowClockwiseRegular } from "@fluentui/react-icons";
import { ApiError } from "../api/http";
import type { Limit, ModelsOut, ProfileOut, RouteOut, UsageLine, UsageReport } from "../api/types";
import {
  chainText, limitColor, limitFraction, limitLabel, limitSpent, piiText, priceText, ruleText, sortedRoutes, stateText,
  taskLabel, usageText,
} from "../shared/models";
import { usePane } from "./context";
import { ProblemBar } from "./ProblemBar";
import { useStyles } from "./styles";

const useLocal = makeStyles({
  subTitle: { margin: `${tokens.spacingVerticalS} 0 0`, fontSize: tokens.fontSizeBase200, fontWeight: tokens.fontWeightSemibold },
  badges: { display: "flex", flexWrap: "wrap", alignItems: "center", gap: tokens.spacingHorizontalXS },
  warning: { color: tokens.colorPaletteDarkOrangeForeground1 },
  error: { color: tokens.colorPaletteRedForeground1 },
  group: { display: "flex", flexDirection: "column", gap: tokens.spacingVerticalS },
  list: { margin: 0, paddingLeft: tokens.spacingHorizontalL, display: "flex", flexDirection: "column", gap: "2px" },
});

const STATE_COLOR = { ready: "success", loading: "informative", not_loaded: "subtle", failed: "danger" } as const;

function ProfileCard({ profile }: { profile: ProfileOut }) {
  const styles = useStyles();
  const local = useLocal();
  const pii = piiText(profile);
  const price = priceText(profile);
  return (
    <div className={styles.itemCard} role="group" aria-label={`Profile ${profile.name}`} data-testid="profile" data-name={profile.name}>
      <div className={local.badges}>
        <Text weight="semibold" className={styles.grow}>{profile.name}</Text>
        <Badge appearance="tint" color={profile.local ? "success" : "warning"} data-testid="locality">
          {profile.local ? "On this computer" : "Remote"}
        </Badge>
        <Badge appearance="outline" color={STATE_COLOR[profile.state] ?? "informative"} data-testid="state">{stateText(profile.state)}</Badge>
      </div>
      <Caption1 className={styles.muted} data-testid="where">{profile.backend} · {profile.where}</Caption1>
      {pii && <Caption1 data-testid="pii">{pii}.</Caption1>}
      {price && <Caption1 className={styles.muted} data-testid="price">{price}</Caption1>}
      {profile.breaker && <Caption1 className={local.warning} data-testid="breaker">Skipped for now: {profile.breaker}</Caption1>}
      {profile.state === "failed" && profile.error && <Caption1 className={local.error} data-testid="profile-error">{profile.error}</Caption1>}
    </div>
  );
}

function RouteCard({ route }: { route: RouteOut }) {
  const styles = useStyles();
  const [primary, ...fallbacks] = route.use;
  return (
    <div className={styles.itemCard} role="group" aria-label={taskLabel(route.task)} data-testid="route" data-task={route.task}>
      <Text weight="semibold">{taskLabel(route.task)}</Text>
      <Caption1 data-testid="chain">{chainText(route.use)}</Caption1>
      <Caption1 className={styles.muted}>
        {fallbacks.length ? `${primary} first; if it fails before answering, ${fallbacks.join(", then ")}.` : `${primary} only.`}
      </Caption1>
      {route.rules?.map((rule, i) => <Caption1 key={i} data-testid="rule">{ruleText(rule)}</Caption1>)}
    </div>
  );
}

function Budget({ limit }: { limit: Limit }) {
  const styles = useStyles();
  const label = limitLabel(limit);
  return (
    <div className={styles.itemCard} data-testid="budget" data-scope={limit.scope} data-name={limit.name} data-period={limit.period}>
      <div className={styles.row}>
        <Text className={styles.grow}>{label}</Text>
        <Caption1 data-testid="spent">{limitSpent(limit)}</Caption1>
      </div>
      <ProgressBar value={limitFraction(limit)} color={limitColor(limit)} thickness="medium" aria-label={`${label}: ${limitSpent(limit)}`} />
    </div>
  );
}

function Usage({ title, lines, testId }: { title: string; lines: UsageLine[]; testId: string }) {
  const styles = useStyles();
  const local = useLocal();
  return (
    <>
      <h4 className={local.subTitle}>{title}</h4>
      {lines.length === 0 ? (
        <Caption1 className={styles.muted} data-testid={testId}>Nothing yet.</Caption1>
      ) : (
        <ul className={local.list} data-testid={testId}>
          {lines.map((line) => (
            <li key={`${line.profile}:${line.task}`} data-testid="usage-line">
              <Caption1><strong>{line.profile}</strong>, {taskLabel(line.task).toLowerCase()}: {usageText(line)}</Caption1>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

export function ModelsSettings() {
  const { api } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const [models, setModels] = useState<ModelsOut | null>(null);
  const [usage, setUsage] = useState<UsageReport | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);

  const load = useCallback(() => {
    setError(null);
    setLoading(true);
    Promise.all([api.get<ModelsOut>("/v1/models"), api.get<UsageReport>("/v1/usage")]).then(
      ([m, u]) => { setModels(m); setUsage(u); },
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError("server", String(e))),
    ).finally(() => setLoading(false));
  }, [api]);
  useEffect(load, [load]);

  return (
    <section className={styles.section} aria-labelledby="models-title" data-testid="models">
      <div className={styles.row}>
        <h2 id="models-title" className={`${styles.sectionTitle} ${styles.grow}`}>Models</h2>
        <Button size="small" appearance="subtle" icon={<ArrowClockwiseRegular />} disabled={loading} onClick={load}>Refresh</Button>
      </div>
      <Caption1 className={styles.muted} data-testid="models-hint">
        Which model answers each task, and what it may spend. Your IT department changes these on this computer
        with <code>deskpilot models use</code>.
      </Caption1>
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} onRetry={load} />}
      {loading && !models && !error && <Spinner size="tiny" label="Loading models…" />}
      {models && (
        <>
          <h3 className={local.subTitle}>Profiles</h3>
          {(models.profiles ?? []).map((p) => <ProfileCard key={p.name} profile={p} />)}
          <h3 className={local.subTitle}>Which task uses which</h3>
          {sortedRoutes(models.routes ?? []).map((r) => <RouteCard key={r.task} route={r} />)}
        </>
      )}
      {usage && (
        <div data-testid="usage" className={local.group}>
          <h3 className={local.subTitle}>Use and budgets</h3>
          {usage.limits.length === 0
            ? <Caption1 className={styles.muted}>No budgets are set.</Caption1>
            : usage.limits.map((l) => <Budget key={`${l.scope}:${l.name}:${l.period}:${l.kind}`} limit={l} />)}
          <Usage title="Today" lines={usage.today} testId="usage-today" />
          <Usage title="This month" lines={usage.thisMonth} testId="usage-month" />
        </div>
      )}
    </section>
  );
}
