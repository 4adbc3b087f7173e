/** The pane-wide states: no valid access token, server not reachable, model loading or failed, offline. */
import { MessageBar, MessageBarBody, MessageBarTitle } from "@fluentui/react-components";
import { usePane } from "./context";
import { ProblemBar } from "./ProblemBar";
import { useStyles } from "./styles";

export function ConnectionBanner() {
  const { server } = usePane();
  const styles = useStyles();
  let banner: React.ReactNode = null;
  if (server.reach === "unauthorized" && server.refused) {
    // Persistent, with no Retry: only reopening the pane (with the token in its start URL) helps.
    const { kind, message, code } = server.refused;
    banner = <ProblemBar problem={{ kind, message, code }} brief={false} />;
  } else if (server.reach === "unreachable") {
    banner = <ProblemBar problem={{ kind: "unreachable", message: server.error ?? "" }} onRetry={server.refresh} />;
  } else if (server.reach === "ok" && server.health?.model === "loading") {
    banner = (
      <MessageBar intent="info" data-testid="model-loading">
        <MessageBarBody><MessageBarTitle>Loading the model</MessageBarTitle><div>Requests wait until it's ready; this takes a few seconds.</div></MessageBarBody>
      </MessageBar>
    );
  } else if (server.reach === "ok" && server.health?.model === "failed") {
    banner = (
      <MessageBar intent="error" data-testid="model-failed">
        <MessageBarBody><MessageBarTitle>The model failed to load</MessageBarTitle><div>{server.models?.error ?? "See the Deskpilot log."}</div></MessageBarBody>
      </MessageBar>
    );
  }
  const offline = !server.online && (
    <MessageBar intent="info" data-testid="offline">
      <MessageBarBody>
        <MessageBarTitle>You're offline</MessageBarTitle>
        <div>Deskpilot runs on this computer, so it keeps working; Microsoft 365 sync waits until you're back online.</div>
      </MessageBarBody>
    </MessageBar>
  );
  if (!banner && !offline) return null;
  return <div className={styles.section} role="region" aria-label="Connection">{banner}{offline}</div>;
}
