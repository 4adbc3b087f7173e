/** The pane: header with the server's state, the banners, tabs for the task, the queues, status, settings. */
import { useCallback, useEffect, useMemo, useState } from "react";
import { Badge, FluentProvider, Tab, TabList, makeStyles, tokens, webDarkTheme, webLightTheme } from "@fluentui/react-components";
import {
  ClipboardTaskListLtrRegular, DocumentTextRegular, FlashRegular, HeartPulseRegular, MailRegular, SettingsRegular,
} from "@fluentui/react-icons";
import { NO_TOKEN, type Api } from "../api/http";
import type { Host } from "../hosts";
import { officeBackground, onOfficeThemeChanged } from "../hosts/theme";
import { identityFor, prefilled } from "../shared/identity";
import { loadPrefs, savePrefs, type Prefs } from "../shared/prefs";
import { isActive } from "../shared/run";
import { wantsDark } from "../shared/theme";
import { ActionsView } from "./ActionsView";
import { ConnectionBanner } from "./ConnectionBanner";
import { PaneContext, type Pane, type View } from "./context";
import { OutlookView } from "./OutlookView";
import { ReviewView } from "./ReviewView";
import { SettingsView } from "./SettingsView";
import { StandaloneView } from "./StandaloneView";
import { StatusView } from "./StatusView";
import { WordView } from "./WordView";
import { useRun } from "./useRun";
import { useServer } from "./useServer";
import { useWorkflow } from "./useWorkflow";

const useStyles = makeStyles({
  root: { minHeight: "100%", display: "flex", flexDirection: "column", backgroundColor: tokens.colorNeutralBackground1 },
  header: {
    display: "flex",
    alignItems: "center",
    gap: tokens.spacingHorizontalS,
    padding: `${tokens.spacingVerticalS} ${tokens.spacingHorizontalM}`,
    borderBottom: `1px solid ${tokens.colorNeutralStroke2}`,
  },
  name: { flexGrow: 1, margin: 0, fontSize: tokens.fontSizeBase400, fontWeight: tokens.fontWeightSemibold },
  tabs: { padding: `0 ${tokens.spacingHorizontalXS}`, borderBottom: `1px solid ${tokens.colorNeutralStroke2}` },
  main: { flexGrow: 1, paddingBottom: tokens.spacingVerticalL },
});

function usePrefersDark(): boolean {
  const query = typeof matchMedia === "function" ? matchMedia("(prefers-color-scheme: dark)") : null;
  const [dark, setDark] = useState(query?.matches ?? false);
  useEffect(() => {
    if (!query) return;
    const change = () => setDark(query.matches);
    query.addEventListener("change", change);
    return () => query.removeEventListener("change", change);
  }, [query]);
  return dark;
}

function useOfficeBackground(): string | undefined {
  const [color, setColor] = useState(officeBackground);
  useEffect(() => onOfficeThemeChanged(() => setColor(officeBackground())), []);
  return color;
}

export function App({ api, host }: { api: Api; host: Host }) {
  const styles = useStyles();
  const server = useServer(api);
  const run = useRun(api);
  const workflow = useWorkflow(api);
  const [prefs, setPrefsState] = useState<Prefs>(() => loadPrefs());
  const [view, setView] = useState<View>("task");
  const [focus, setFocus] = useState<string | null>(null);
  const dark = wantsDark(prefs.theme, useOfficeBackground(), usePrefersDark());

  const setPrefs = (next: Prefs) => {
    setPrefsState(next);
    savePrefs(next);
  };
  const show = useCallback((next: View, item?: string) => {
    setView(next);
    setFocus(item ?? null);
  }, []);
  const officeUser = host.kind === "outlook" ? host.user : null;
  const identity = useMemo(() => identityFor(prefs, officeUser), [prefs, officeUser]);
  // Outlook knows the user: Settings starts with their name and address (for Word, which cannot ask).
  useEffect(() => {
    setPrefsState((current) => {
      const filled = prefilled(current, officeUser);
      if (!filled) return current;
      savePrefs(filled);
      return filled;
    });
  }, [officeUser]);
  const pane: Pane = { api, host, server, prefs, setPrefs, identity, run, workflow, show, focus };

  // Escape cancels a running task from anywhere in the pane.
  const active = isActive(run.state);
  const { cancel } = run;
  useEffect(() => {
    if (!active) return;
    const onKey = (e: KeyboardEvent) => { if (e.key === "Escape") cancel(); };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [active, cancel]);

  // A failed request that never reached the server is news for the connection banner too.
  const { refresh } = server;
  const problem = run.state.problem;
  useEffect(() => {
    if (problem?.kind === "unreachable") refresh();
  }, [problem, refresh]);

  const badge = useMemo(() => {
    if (server.reach === "checking") return { text: "Connecting", color: "informative" as const };
    if (server.reach === "unreachable") return { text: "Not connected", color: "danger" as const };
    if (server.reach === "unauthorized") {
      return { text: server.refused?.code === NO_TOKEN ? "No access" : "Reopen needed", color: "danger" as const };
    }
    if (server.health?.model === "loading") return { text: "Loading model", color: "informative" as const };
    if (server.health?.model === "failed") return { text: "Model failed", color: "danger" as const };
    if (active) return { text: "Working", color: "brand" as const };
    return { text: "Ready", color: "success" as const };
  }, [server.reach, server.refused, server.health?.model, active]);

  // Labels as short as "Mail": with three labelled tabs and two icons, a longer one ("Document") pushes
  // Settings out of Office's narrowest pane (320 px). The accessible name and tooltip stay in full.
  const taskTab = host.kind === "outlook" ? { label: "Mail", name: "Mail", icon: <MailRegular /> }
    : host.kind === "word" ? { label: "Doc", name: "Document", icon: <DocumentTextRegular /> }
      : { label: "Try it", name: "Try it", icon: <DocumentTextRegular /> };

  return (
    <FluentProvider theme={dark ? webDarkTheme : webLightTheme} className={styles.root} data-theme={dark ? "dark" : "light"}>
      <PaneContext.Provider value={pane}>
        <header className={styles.header}>
          <img src="assets/icon-32.png" width={20} height={20} alt="" />
          <h1 className={styles.name}>Deskpilot</h1>
          <Badge appearance="tint" color={badge.color} data-testid="server-badge" aria-live="polite">{badge.text}</Badge>
        </header>
        <TabList className={styles.tabs} size="small" selectedValue={view} onTabSelect={(_, d) => show(d.value as View)} aria-label="Views">
          <Tab value="task" icon={taskTab.icon} aria-label={taskTab.name} title={taskTab.name}>{taskTab.label}</Tab>
          <Tab value="review" icon={<ClipboardTaskListLtrRegular />}>Review</Tab>
          <Tab value="actions" icon={<FlashRegular />}>Actions</Tab>
          {/* Icons only for the last two: five labelled tabs do not fit Office's narrowest pane (320 px);
              tests/e2e/test_pane_trust.py checks every host's bar at that width. */}
          <Tab value="status" icon={<HeartPulseRegular />} aria-label="Status" title="Status" />
          <Tab value="settings" icon={<SettingsRegular />} aria-label="Settings" title="Settings" />
        </TabList>
        <ConnectionBanner />
        <main className={styles.main}>
          {view === "task" && (host.kind === "outlook" ? <OutlookView host={host} /> : host.kind === "word" ? <WordView host={host} /> : <StandaloneView />)}
          {view === "review" && <ReviewView />}
          {view === "actions" && <ActionsView />}
          {view === "status" && <StatusView />}
          {view === "settings" && <SettingsView />}
        </main>
      </PaneContext.Provider>
    </FluentProvider>
  );
}
