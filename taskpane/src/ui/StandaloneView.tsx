/** Outside Office (the page opened in a browser, e.g. from the add-in's support link). */
import { useState } from "react";
import { Button, Field, Textarea, Text } from "@fluentui/react-components";
import { SparkleRegular } from "@fluentui/react-icons";
import { isActive } from "../shared/run";
import { usePane } from "./context";
import { RunPanel } from "./RunPanel";
import { useStyles } from "./styles";

export function StandaloneView() {
  const { run, prefs } = usePane();
  const styles = useStyles();
  const [text, setText] = useState("");
  return (
    <>
      <div className={styles.section}>
        <Text>
          This is Deskpilot's task pane. In Outlook and Word it works on the open message or document; add it
          to Office with <code>deskpilot manifest</code>. Here you can try it on any text.
        </Text>
        <Field label="Text to summarize">
          <Textarea resize="vertical" rows={6} value={text} onChange={(_, d) => setText(d.value)} />
        </Field>
        <div className={styles.row}>
          <Button appearance="primary" icon={<SparkleRegular />} disabled={!text.trim() || isActive(run.state)}
            onClick={() => run.start({ label: "Summary", path: "/v1/summarize", body: { text, sentences: prefs.sentences, client: "api" } })}>
            Summarize
          </Button>
        </div>
      </div>
      <RunPanel />
    </>
  );
}
