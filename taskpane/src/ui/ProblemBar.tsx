/** One message bar for everything that can go wrong, each with what the user can do about it. */
import type { ReactNode } from "react";
import { Button, MessageBar, MessageBarActions, MessageBarBody, MessageBarTitle } from "@fluentui/react-components";
import { NO_TOKEN } from "../api/http";
import type { Problem } from "../shared/run";

interface Props {
  problem: Problem;
  retryIn?: number | null;
  onRetry?: () => void;
  /**
   * Title only: the pane-wide banner already explains (a run that could not reach the server). By default
   * for "unauthorized", which the connection banner always explains in full.
   */
  brief?: boolean;
}

function describe(problem: Problem, retryIn?: number | null): { title: string; body: ReactNode; intent: "error" | "warning" | "info" } {
  switch (problem.kind) {
    case "busy": {
      const wait = retryIn ? `Trying again in ${retryIn} s.` : problem.retryAfter ? `Try again in ${problem.retryAfter} s.` : "Try again in a moment.";
      return { title: "The model is busy", body: `It is answering other requests and its queue is full. ${wait}`, intent: "warning" };
    }
    case "unreachable":
      // A refused connection and an untrusted certificate look the same to a page (the browser hides TLS
      // errors from scripts), so the message gives the fix for both.
      return {
        title: "Can't reach Deskpilot",
        body: (
          <>
            Deskpilot runs on this computer and isn't answering. Start it (the Deskpilot app, or <code>deskpilot serve</code>).
            If it is running, this computer may not trust its certificate: run <code>deskpilot install</code> again, then retry.
          </>
        ),
        intent: "error",
      };
    case "unauthorized":
      // No request can work until the pane has a valid token, and only its start URL brings one.
      if (problem.code === NO_TOKEN) {
        return {
          title: "Open Deskpilot from Outlook or Word",
          body: (
            <>
              This page was opened without Deskpilot's access token, so it can't use Deskpilot. Open Deskpilot with its
              button in Outlook or Word. To use it in a browser, open the address that <code>deskpilot token show --url</code> prints.
            </>
          ),
          intent: "error",
        };
      }
      return {
        title: "Close and reopen Deskpilot",
        body: (
          <>
            Deskpilot's access token has changed (for example with <code>deskpilot token rotate</code>), so this pane can't
            use it any more. Close the Deskpilot pane and open it again. If it still says this, run <code>deskpilot install</code> again
            and restart Outlook or Word.
          </>
        ),
        intent: "error",
      };
    case "unavailable":
      return { title: "The model isn't available", body: problem.message, intent: "error" };
    case "missing":
      // Every endpoint the pane calls is there (it ships inside the server): a 404 is an item it no longer has.
      return { title: "Not found", body: problem.message, intent: "info" };
    case "invalid":
      return { title: "Deskpilot couldn't use this", body: problem.message, intent: "warning" };
    case "forbidden":
      if (problem.code === "loosening_forbidden") {
        // allow_loosening_approval = false in the settings IT deploys: no one on this computer can.
        return { title: "Your IT department does not allow loosening approvals", body: problem.message, intent: "warning" };
      }
      return { title: "Request refused", body: problem.message, intent: "error" };
    case "conflict":
      return { title: "Not possible right now", body: problem.message, intent: "warning" };
    default:
      return { title: "Something went wrong", body: problem.message, intent: "error" };
  }
}

const NO_RETRY: ReadonlySet<Problem["kind"]> = new Set(["invalid", "missing", "forbidden", "conflict", "unauthorized"]);

export function ProblemBar({ problem, retryIn, onRetry, brief = problem.kind === "unauthorized" }: Props) {
  const { title, body, intent } = describe(problem, retryIn);
  const canRetry = onRetry && !NO_RETRY.has(problem.kind);
  return (
    <MessageBar intent={intent} layout="multiline" data-testid="problem" data-kind={problem.kind}
      data-code={problem.code}>
      <MessageBarBody>
        <MessageBarTitle>{title}</MessageBarTitle>
        {!brief && <div>{body}</div>}
      </MessageBarBody>
      {canRetry && (
        <MessageBarActions>
          <Button size="small" onClick={onRetry}>{problem.kind === "busy" && retryIn ? "Retry now" : "Retry"}</Button>
        </MessageBarActions>
      )}
    </MessageBar>
  );
}
