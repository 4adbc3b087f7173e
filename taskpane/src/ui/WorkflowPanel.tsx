/**
 * The workflow started on the open message: where it is (its steps), what it waits for (a review, with
 * a link to it in the review queue; approvals, with a link to Actions), and its actions with their status.
 */
import { Badge, Button, Caption1, Link, Spinner, Text, makeStyles, tokens } from "@fluentui/react-components";
import {
  CheckmarkCircleFilled, CircleRegular, DismissCircleFilled, PersonClockRegular, SubtractCircleRegular,
} from "@fluentui/react-icons";
import type { WorkflowRecord } from "../api/types";
import { actionDetail, actionReason, automationLabel, kindLabel, statusColor, statusLabel } from "../shared/actions";
import { isWorkflowActive, workflowHeadline, workflowSteps, workflowWait, type StepState } from "../shared/workflow";
import { usePane } from "./context";
import { ProblemBar } from "./ProblemBar";
import type { WorkflowState } from "./useWorkflow";

const useStyles = makeStyles({
  panel: {
    display: "flex",
    flexDirection: "column",
    gap: tokens.spacingVerticalS,
    margin: `0 ${tokens.spacingHorizontalM} ${tokens.spacingVerticalM}`,
    padding: tokens.spacingHorizontalM,
    borderRadius: tokens.borderRadiusLarge,
    border: `1px solid ${tokens.colorNeutralStroke2}`,
  },
  head: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalS },
  title: { flexGrow: 1, minWidth: 0, fontWeight: tokens.fontWeightSemibold, fontSize: tokens.fontSizeBase300 },
  status: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalXS, color: tokens.colorNeutralForeground2 },
  steps: { margin: 0, padding: 0, listStyleType: "none", display: "flex", flexDirection: "column", gap: "2px" },
  step: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalS, fontSize: tokens.fontSizeBase200 },
  later: { color: tokens.colorNeutralForeground3 },
  done: { color: tokens.colorPaletteGreenForeground1 },
  failed: { color: tokens.colorPaletteRedForeground1 },
  actions: { margin: 0, padding: 0, listStyleType: "none", display: "flex", flexDirection: "column", gap: tokens.spacingVerticalXS },
  action: {
    display: "flex",
    flexDirection: "column",
    gap: "2px",
    padding: `${tokens.spacingVerticalXS} ${tokens.spacingHorizontalS}`,
    borderRadius: tokens.borderRadiusMedium,
    backgroundColor: tokens.colorNeutralBackground2,
    overflowWrap: "anywhere",
  },
  actionHead: { display: "flex", alignItems: "center", gap: tokens.spacingHorizontalS },
  grow: { flexGrow: 1, minWidth: 0 },
  muted: { color: tokens.colorNeutralForeground3 },
  visuallyHidden: { position: "absolute", width: "1px", height: "1px", overflow: "hidden", clip: "rect(0 0 0 0)", whiteSpace: "nowrap" },
});

const STEP_STATE_TEXT: Record<StepState, string> = {
  done: "done", skipped: "not needed", running: "in progress", waiting: "waiting", failed: "failed",
  stopped: "stopped here", todo: "to do", not_run: "not run",
};

function StepIcon({ state }: { state: StepState }) {
  const styles = useStyles();
  switch (state) {
    case "done":
      return <CheckmarkCircleFilled className={styles.done} aria-hidden />;
    case "running":
      return <Spinner size="extra-tiny" aria-hidden />;
    case "waiting":
      return <PersonClockRegular aria-hidden />;
    case "failed":
      return <DismissCircleFilled className={styles.failed} aria-hidden />;
    case "skipped":
    case "stopped":
      return <SubtractCircleRegular className={styles.later} aria-hidden />;
    default:
      return <CircleRegular className={styles.later} aria-hidden />;
  }
}

const WORKFLOW_BADGE: Record<WorkflowRecord["status"], "brand" | "warning" | "success" | "danger" | "subtle" | "informative"> = {
  running: "brand", waiting: "warning", completed: "success", skipped: "subtle", rejected: "subtle", failed: "danger",
  compensating: "warning", compensated: "danger",
};

function Progress({ workflow }: { workflow: WorkflowRecord }) {
  const { show } = usePane();
  const styles = useStyles();
  const wait = workflowWait(workflow);
  const actions = workflow.actions ?? [];
  return (
    <>
      <Caption1 className={styles.status} data-testid="workflow-status" aria-live="polite">
        {isWorkflowActive(workflow) && wait === null && <Spinner size="extra-tiny" aria-hidden />}
        {workflowHeadline(workflow)}
      </Caption1>
      <ol className={styles.steps} aria-label="Steps">
        {workflowSteps(workflow).map((step) => (
          <li key={step.name} className={`${styles.step} ${step.state === "todo" || step.state === "not_run" ? styles.later : ""}`}
            data-testid="workflow-step" data-step={step.name} data-state={step.state}>
            <StepIcon state={step.state} />
            <span>{step.label}<span className={styles.visuallyHidden}> ({STEP_STATE_TEXT[step.state]})</span></span>
          </li>
        ))}
      </ol>
      {wait?.kind === "review" && (
        <Caption1>
          A person checks what was read before anything happens.{" "}
          <Link as="button" onClick={() => show("review", wait.reviewId)} data-testid="workflow-review-link">Open the review</Link>
        </Caption1>
      )}
      {wait?.kind === "actions" && actions.some((a) => a.status === "pending_review") && (
        <Caption1>
          Some actions need your approval.{" "}
          <Link as="button" onClick={() => show("actions")}>Open Actions</Link>
        </Caption1>
      )}
      {wait?.kind === "paused" && (
        <Caption1>
          It continues when the automation is switched on again.{" "}
          <Link as="button" onClick={() => show("settings", workflow.automation)}>Settings</Link>
        </Caption1>
      )}
      {actions.length > 0 && (
        <ul className={styles.actions} aria-label="Actions">
          {actions.map((action) => {
            const reason = actionReason(action);
            return (
              <li key={action.id} className={styles.action} data-testid="workflow-action" data-status={action.status}>
                <div className={styles.actionHead}>
                  <Text size={200} weight="semibold" className={styles.grow}>{kindLabel(action.kind)}</Text>
                  <Badge size="small" appearance="tint" color={statusColor(action.status)}>{statusLabel(action.status)}</Badge>
                </div>
                <Caption1>{actionDetail(action) || action.title}</Caption1>
                {reason && <Caption1 className={styles.muted}>{reason}</Caption1>}
              </li>
            );
          })}
        </ul>
      )}
      {workflow.error && !isWorkflowActive(workflow) && <Caption1 className={styles.failed}>{workflow.error}</Caption1>}
    </>
  );
}

export function WorkflowPanel({ state }: { state: WorkflowState }) {
  const { show, workflow: handle } = usePane();
  const styles = useStyles();
  const { workflow, problem, phase, request } = state;
  const disabled = phase === "failed" && problem?.status === 409;
  const retry = () => handle.start(request);
  return (
    <section className={styles.panel} aria-labelledby="workflow-title" data-testid="workflow"
      data-status={workflow?.status ?? phase} data-workflow-id={workflow?.id}>
      <div className={styles.head}>
        <span id="workflow-title" className={styles.title}>{request.title}</span>
        {workflow && (
          <Badge appearance="tint" color={WORKFLOW_BADGE[workflow.status]}>{statusLabel(workflow.status)}</Badge>
        )}
      </div>
      {phase === "starting" && (
        <Caption1 className={styles.status} data-testid="workflow-status"><Spinner size="extra-tiny" aria-hidden />Starting…</Caption1>
      )}
      {workflow && <Progress workflow={workflow} />}
      {disabled ? (
        <Caption1 data-testid="workflow-disabled">
          {automationLabel(request.automation)} is switched off, so it did not start.{" "}
          <Link as="button" onClick={() => show("settings", request.automation)}>Turn it on in Settings</Link>
        </Caption1>
      ) : problem && (
        <ProblemBar problem={{ kind: problem.kind, message: problem.message, code: problem.code }} onRetry={phase === "failed" && !workflow ? retry : undefined} />
      )}
      {workflow && state.created === false && (
        <Caption1 className={styles.muted}>Already started from this result: this is that workflow.</Caption1>
      )}
      {phase === "failed" && !workflow && !disabled && !problem && (
        <div><Button size="small" onClick={retry}>Try again</Button></div>
      )}
    </section>
  );
}
