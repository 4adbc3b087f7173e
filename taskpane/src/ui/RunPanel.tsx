/**
 * The output of the current run: the text as it streams, Cancel while it runs, then who answered (the
 * profile and its model), a link to the run's lineage record and how long the first word took. Below that,
 * what the user should know about how it was answered: another profile took over after one failed
 * (`fallback`), personal data was masked before the request left the computer (`masked`), or the answer
 * repeats a recorded one (`cachedFrom`). After a fallback the server sends a second `meta` event; the
 * reducer keeps the latest, so these describe the profile that answered. Structured results and sources
 * are rendered below the text. Once the faithfulness check's `grounded` event arrives, its sentences
 * replace the streamed text (GroundedText), quotes set apart and each with its source a click away. Screen readers are told when the answer is complete rather than every token.
 */
import { useEffect, useRef, type ReactNode } from "react";
import { Button, Caption1, Link, ProgressBar, Spinner, makeStyles, mergeClasses, tokens } from "@fluentui/react-components";
import { DismissRegular, HistoryRegular, ShieldLockRegular, WarningRegular } from "@fluentui/react-icons";
import type { MetaEvent, ProgressEvent } from "../api/types";
import { answerNotes } from "../shared/models";
import { humanize } from "../shared/result";
import { isActive } from "../shared/run";
import { usePane } from "./context";
import { LineageLink } from "./LineageLink";
import { ProblemBar } from "./ProblemBar";
import { ResultView } from "./ResultView";
import { SourcesView } from "./SourcesView";
import { AnswerText } from "./AnswerText";
import { GroundedText } from "./GroundedText";

const useStyles = makeStyles({
  panel: {
    display: "flex",
    flexDirection: "column",
    gap: tokens.spacingVerticalS,
    margin: `0 ${tokens.spacingHorizontalM} ${tokens.spacingVerticalM}`,
    padding: tokens.spacingHorizontalM,
    borderRadius: tokens.borderRadiusLarge,
    border: `1px solid ${tokens.colorNeutralStroke2}`,
    backgroundColor: tokens.colorNeutralBackground1,
  },
  head: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalS, minHeight: "24px", marginBottom: "-4px" },
  title: {
    flexGrow: 1,
    minWidth: 0,
    overflow: "hidden",
    textOverflow: "ellipsis",
    whiteSpace: "nowrap",
    fontWeight: tokens.fontWeightSemibold,
    fontSize: tokens.fontSizeBase300,
  },
  status: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalXS, color: tokens.colorNeutralForeground3 },
  text: {
    margin: 0,
    whiteSpace: "pre-wrap",
    overflowWrap: "anywhere",
    fontSize: tokens.fontSizeBase300,
    lineHeight: tokens.lineHeightBase400,
    color: tokens.colorNeutralForeground1,
  },
  caret: {
    display: "inline-block",
    width: "2px",
    height: "1em",
    marginLeft: "1px",
    verticalAlign: "text-bottom",
    backgroundColor: tokens.colorBrandForeground1,
    animationName: { "0%": { opacity: 1 }, "50%": { opacity: 0 }, "100%": { opacity: 1 } },
    animationDuration: "1s",
    animationIterationCount: "infinite",
    "@media (prefers-reduced-motion: reduce)": { animationName: "none" },
  },
  footer: {
    display: "flex",
    flexWrap: "wrap",
    rowGap: "2px",
    color: tokens.colorNeutralForeground3,
    "& > *:not(:last-child)::after": { content: '"·"', margin: `0 ${tokens.spacingHorizontalXS}` },
  },
  notes: { display: "flex", flexDirection: "column", gap: "2px" },
  note: { display: "flex", alignItems: "flex-start", gap: tokens.spacingHorizontalXS, overflowWrap: "anywhere", color: tokens.colorNeutralForeground2 },
  noteIcon: { flexShrink: 0, fontSize: "14px", marginTop: "1px" },
  fallback: { color: tokens.colorPaletteDarkOrangeForeground1 },
  visuallyHidden: { position: "absolute", width: "1px", height: "1px", overflow: "hidden", clip: "rect(0 0 0 0)", whiteSpace: "nowrap" },
});

const STATUS = { idle: "", waiting: "Waiting for the model…", streaming: "Writing…", done: "Done", cancelled: "Cancelled", failed: "Stopped" } as const;


function progressText(p: ProgressEvent): string {
  if (p.stage === "waiting") return "Waiting for the model…";
  if (p.stage === "checking") return "Checking the result…";
  return p.field ? `Reading ${humanize(p.field.replace(/\[\d+\].*$|\..*$/, ""))}…` : "Reading…";
}

function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** How the answer came about, when there is something to say: fallback, masking, repeated. */
function AnswerNotesView({ meta }: { meta: MetaEvent }) {
  const styles = useStyles();
  const notes = answerNotes(meta);
  if (!notes.fallback && !notes.masked && !notes.cached) return null;
  return (
    <div className={styles.notes} data-testid="run-notes">
      {notes.fallback && (
        <Caption1 className={mergeClasses(styles.note, styles.fallback)} data-testid="run-fallback">
          <WarningRegular className={styles.noteIcon} aria-hidden />{notes.fallback}
        </Caption1>
      )}
      {notes.masked && (
        <Caption1 className={styles.note} data-testid="run-masked">
          <ShieldLockRegular className={styles.noteIcon} aria-hidden />{notes.masked}
        </Caption1>
      )}
      {notes.cached && (
        <Caption1 className={styles.note} data-testid="run-cached" title={`Repeats run ${meta.cachedFrom}`}>
          <HistoryRegular className={styles.noteIcon} aria-hidden />{notes.cached}
        </Caption1>
      )}
    </div>
  );
}

export function RunPanel({ actions }: { actions?: ReactNode }) {
  const { run, server } = usePane();
  const styles = useStyles();
  const { state, request } = run;
  const panel = useRef<HTMLElement>(null);
  // A run started from further down the pane shows its output here: bring it into view.
  useEffect(() => {
    if (request) panel.current?.scrollIntoView?.({ block: "nearest" });
  }, [request]);
  if (state.phase === "idle" || !request) return null;
  const active = isActive(state);
  const firstWord = state.firstTokenAt !== undefined && state.startedAt !== undefined ? state.firstTokenAt - state.startedAt : undefined;
  const tokensOut = state.done?.usage?.completionTokens;
  const cited = state.sources && new Set(state.sources.map((x) => x.number));

  return (
    <section ref={panel} className={styles.panel} aria-labelledby="run-title" data-testid="run" data-phase={state.phase}>
      <div className={styles.head}>
        <span id="run-title" className={styles.title}>{request.label}</span>
        {active && (
          <Button size="small" appearance="subtle" icon={<DismissRegular />} onClick={run.cancel} data-testid="cancel">
            Cancel
          </Button>
        )}
      </div>
      <Caption1 className={styles.status} data-testid="run-status">
        {active && <Spinner size="extra-tiny" aria-hidden />}
        {active && state.progress ? progressText(state.progress)
          : state.phase === "failed" && !state.text && !state.meta ? "Not started" : STATUS[state.phase]}
      </Caption1>
      {active && state.progress?.stage === "generating" && state.progress.maxTokens ? (
        <ProgressBar value={Math.min(1, (state.progress.tokens ?? 0) / state.progress.maxTokens)} thickness="medium"
          aria-label="Progress" />
      ) : null}

      {state.grounded ? (
        <div className={styles.text} data-testid="run-output" aria-busy={active}>
          <GroundedText event={state.grounded} sources={cited} />
        </div>
      ) : (state.text || (active && state.result === undefined)) && (
        <p className={styles.text} data-testid="run-output" aria-busy={active}>
          <AnswerText text={state.text} sources={cited} />
          {active && <span className={styles.caret} aria-hidden />}
        </p>
      )}
      {state.result !== undefined && <ResultView result={state.result} />}
      {state.sources && state.sources.length > 0 && <SourcesView sources={state.sources} />}

      {state.problem && (
        <ProblemBar problem={state.problem} retryIn={run.retryIn} onRetry={run.retry}
          brief={(state.problem.kind === "unreachable" && server.reach === "unreachable") || state.problem.kind === "unauthorized"} />
      )}
      {state.phase === "cancelled" && (
        <Caption1>{state.text ? "The text so far is kept. " : ""}<Link as="button" onClick={run.retry}>Run again</Link></Caption1>
      )}
      {state.phase === "done" && actions}

      {(state.meta || state.done) && (
        <Caption1 className={styles.footer} data-testid="run-meta">
          {state.meta && (
            <span title={`${state.meta.backend} · template ${state.meta.template}`} data-testid="run-model">
              {answerNotes(state.meta).answeredBy}
            </span>
          )}
          {(state.meta?.runId ?? state.done?.runId) && (
            <LineageLink runId={(state.meta?.runId ?? state.done?.runId) as string}>Lineage record</LineageLink>
          )}
          {firstWord !== undefined && <span>first word {seconds(firstWord)}</span>}
          {tokensOut !== undefined && <span>{tokensOut} tokens</span>}
          {state.meta?.truncated && <span>input shortened to fit the model</span>}
        </Caption1>
      )}
      {state.meta && <AnswerNotesView meta={state.meta} />}
      <span className={styles.visuallyHidden} role="status" aria-live="polite">
        {state.phase === "done" ? `${request.label} ready.` : state.phase === "cancelled" ? "Cancelled." : ""}
      </span>
    </section>
  );
}
