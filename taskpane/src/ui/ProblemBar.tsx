/** One message bar for everything that can go wrong, each with what the user can do about it. */
import type { ReactNode } from "react";
import { Button, MessageBar, MessageBarActions, MessageBarBody, MessageBarTitle } from "@fluentui/react-components";
import type { Problem } from "../shared/run";

interface Props {
  problem: Problem;
  retryIn?: number | null;
  onRetry?: () => void;
  /** Title only: the pane-wide banner already explains (used for a run that could not reach the server). */
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
    case "unavailable":
      return { title: "The model isn't available", body: problem.message, intent: "error" };
    case "missing":
      // Every endpoint the pane calls is there (it ships inside the server): a 404 is an item it no longer has.
      return { title: "Not found", body: problem.message, intent: "info" };
    case "invalid":
      return { title: "Deskpilot couldn't use this", body: problem.message, intent: "warning" };
    case "forbidden":
      return { title: "Request refused", body: problem.message, intent: "error" };
    case "conflict":
      return { title: "Not possible right now", body: problem.message, intent: "warning" };
    default:
      return { title: "Something went wrong", body: problem.message, intent: "error" };
  }
}

export function ProblemBar({ problem, retryIn, onRetry, brief = false }: Props) {
  const { title, body, intent } = describe(problem, retryIn);
  const canRetry = onRetry && problem.kind !== "invalid" && problem.kind !== "missing" && problem.kind !== "forbidden"
    && problem.kind !== "conflict";
  return (
    <MessageBar intent={intent} layout="multiline" data-testid="problem" data-kind={problem.kind}>
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
