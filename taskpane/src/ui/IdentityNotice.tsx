/**
 * Said where a control needs the person (approve, decide a review, change a policy) and the pane does not
 * know who the user is: Word cannot tell add-ins, and nothing was entered in Settings. The control is off,
 * and this says why and where to fix it, rather than the pane sending a request the server would refuse.
 */
import { Button, MessageBar, MessageBarActions, MessageBarBody, MessageBarTitle } from "@fluentui/react-components";
import { PersonRegular } from "@fluentui/react-icons";
import { usePane } from "./context";

/** The focus Settings takes to bring the name and email fields forward. */
export const IDENTITY_FOCUS = "identity";

export function IdentityNotice({ doing, inSettings = false }: {
  /** What needs the person, as the start of a sentence: "Approving actions". */
  doing: string;
  /** Shown in Settings itself: the fields are on the same page, so no button to go there. */
  inSettings?: boolean;
}) {
  const { host, show } = usePane();
  const why = host.kind === "word" ? "Word doesn't tell Deskpilot who you are" : "Deskpilot doesn't know who you are yet";
  return (
    <MessageBar intent="warning" layout="multiline" data-testid="identity-needed">
      <MessageBarBody>
        <MessageBarTitle>Your name and email are needed</MessageBarTitle>
        <div>
          {doing} records who you are. {why}: enter your name and email {inSettings ? "above, under “Your name” and “Your email”" : "in Settings"}.
        </div>
      </MessageBarBody>
      {!inSettings && (
        <MessageBarActions>
          <Button size="small" icon={<PersonRegular />} onClick={() => show("settings", IDENTITY_FOCUS)}>Open Settings</Button>
        </MessageBarActions>
      )}
    </MessageBar>
  );
}
