/** Word: summarize the document or the selection, ask the indexed documents, extract, rewrite. */
import { useCallback, useEffect, useState } from "react";
import { Button, Caption1, Field, Input, MessageBar, MessageBarBody, Radio, RadioGroup, Select } from "@fluentui/react-components";
import { ChatHelpRegular, DocumentBulletListRegular, SparkleRegular, TextEditStyleRegular } from "@fluentui/react-icons";
import type { AskRequest, ExtractRequest, IndexStatus, RewriteRequest, SummarizeRequest } from "../api/types";
import { HostError, type WordHost } from "../hosts";
import { TONES } from "../shared/prefs";
import { isActive } from "../shared/run";
import { usePane } from "./context";
import { RunPanel } from "./RunPanel";
import { useStyles } from "./styles";

type Scope = "selection" | "document";

export function WordView({ host }: { host: WordHost }) {
  const { api, run, prefs } = usePane();
  const styles = useStyles();
  const [selectionChars, setSelectionChars] = useState(0);
  const [scope, setScope] = useState<Scope>("document");
  const [question, setQuestion] = useState("");
  const [how, setHow] = useState("");
  const [tone, setTone] = useState(prefs.tone);
  const [problem, setProblem] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [index, setIndex] = useState<IndexStatus | null>(null);
  const busy = isActive(run.state);

  const readSelection = useCallback(() => {
    host.readSelection().then((text) => {
      const n = text.trim().length;
      setSelectionChars(n);
      setScope((s) => (n > 0 ? "selection" : s === "selection" ? "document" : s));
    }, () => setSelectionChars(0));
  }, [host]);

  useEffect(() => {
    readSelection();
    return host.onSelectionChanged(readSelection);
  }, [host, readSelection]);

  useEffect(() => {
    api.get<IndexStatus>("/v1/index/status").then(setIndex, () => setIndex(null));
  }, [api]);

  /** Read the text for a task; a HostError (nothing selected...) is shown instead of starting. */
  const text = async (which: Scope): Promise<string | null> => {
    setProblem(null);
    setNotice(null);
    try {
      const value = which === "selection" ? await host.readSelection() : await host.readDocument();
      if (!value.trim()) {
        setProblem(which === "selection" ? "Select some text first." : "The document is empty.");
        return null;
      }
      return value;
    } catch (error) {
      setProblem(error instanceof HostError ? error.message : `Word could not read the text: ${(error as Error).message}`);
      return null;
    }
  };

  const summarize = async () => {
    const value = await text(scope);
    if (value === null) return;
    const body: SummarizeRequest = { text: value, sentences: prefs.sentences, client: "word", sourceRef: host.documentRef() };
    run.start({ label: scope === "selection" ? "Summary of the selection" : "Summary of the document", path: "/v1/summarize", body });
  };
  const ask = () => {
    if (!question.trim()) return;
    const body: AskRequest = { question: question.trim(), client: "word" };
    run.start({ label: `Answer: ${question.trim()}`, path: "/v1/ask", body });
  };
  const extract = async () => {
    const value = await text(scope);
    if (value === null) return;
    const body: ExtractRequest = { schema: "contract", text: value, client: "word", sourceRef: host.documentRef() };
    run.start({ label: "Contract fields", path: "/v1/extract", body });
  };
  const rewrite = async () => {
    const value = await text("selection");
    if (value === null) return;
    const body: RewriteRequest = { text: value, instructions: how, tone, client: "word", sourceRef: host.documentRef() };
    run.start({ label: "Rewrite of the selection", path: "/v1/rewrite", body });
  };
  const insert = () => {
    host.rewriteSelection(run.state.text.trim()).then(
      ({ tracked }) => setNotice(tracked
        ? "Inserted as a tracked change: accept or reject it on Word's Review tab."
        : "Inserted. This version of Word can't track the change from an add-in; Undo restores the original."),
      (error: unknown) => setProblem(error instanceof HostError ? error.message : `Word could not insert the text: ${(error as Error).message}`),
    );
  };

  const actions = run.request?.path === "/v1/rewrite" && run.state.text.trim() ? (
    <div className={styles.row}>
      <Button appearance="primary" icon={<TextEditStyleRegular />} onClick={insert}>
        {host.canTrackChanges ? "Insert as tracked change" : "Replace selection"}
      </Button>
    </div>
  ) : undefined;

  return (
    <>
      <div className={styles.section}>
        <RadioGroup layout="horizontal" value={scope} onChange={(_, d) => setScope(d.value as Scope)} aria-label="What to use">
          <Radio value="document" label="Whole document" />
          <Radio value="selection" label="Selection" disabled={selectionChars === 0} />
        </RadioGroup>
        <Caption1 className={styles.muted}>
          {selectionChars > 0 ? `${selectionChars.toLocaleString()} characters selected` : "Nothing selected"}
        </Caption1>
        <div className={styles.row}>
          <Button appearance="primary" icon={<SparkleRegular />} disabled={busy} onClick={() => void summarize()}>Summarize</Button>
          <Button icon={<DocumentBulletListRegular />} disabled={busy} onClick={() => void extract()}>Contract fields</Button>
        </div>
      </div>
      <RunPanel actions={actions} />
      {(problem || notice) && (
        <div className={styles.section}>
          <MessageBar intent={problem ? "warning" : "success"}><MessageBarBody>{problem ?? notice}</MessageBarBody></MessageBar>
        </div>
      )}

      <div className={styles.section}>
        <h2 className={styles.sectionTitle}>Ask your documents</h2>
        <form className={styles.row} onSubmit={(e) => { e.preventDefault(); ask(); }}>
          <Input className={styles.grow} value={question} onChange={(_, d) => setQuestion(d.value)}
            placeholder="e.g. What is the notice period?" aria-label="Question" />
          <Button type="submit" icon={<ChatHelpRegular />} disabled={busy || !question.trim()}>Ask</Button>
        </form>
        {index && (
          <Caption1 className={styles.muted} data-testid="index-summary">
            {index.documents === 0
              ? <>No documents indexed yet: run <code>deskpilot index FOLDER</code> to add some.</>
              : `Searches ${index.documents.toLocaleString()} documents (${index.chunks.toLocaleString()} passages).`}
            {index.indexing ? ` Indexing: ${index.indexing.filesDone ?? 0} of ${index.indexing.filesTotal ?? "?"} files.` : ""}
          </Caption1>
        )}
      </div>

      <div className={styles.section}>
        <h2 className={styles.sectionTitle}>Rewrite the selection</h2>
        <div className={styles.fieldGrid}>
          <Field label="How" size="small">
            <Input size="small" value={how} onChange={(_, d) => setHow(d.value)} placeholder="clearer, shorter…" />
          </Field>
          <Field label="Tone" size="small">
            <Select size="small" value={tone} onChange={(_, d) => setTone(d.value as typeof tone)}>
              {TONES.map((t) => <option key={t} value={t}>{t[0].toUpperCase() + t.slice(1)}</option>)}
            </Select>
          </Field>
        </div>
        <div className={styles.row}>
          <Button icon={<TextEditStyleRegular />} disabled={busy || selectionChars === 0} onClick={() => void rewrite()}>Rewrite</Button>
        </div>
        <Caption1 className={styles.muted} data-testid="rewrite-note">
          {host.canTrackChanges ? "The new text goes in as a tracked change for you to accept or reject."
            : "This version of Word can't track changes from add-ins: the new text replaces the selection (Undo restores it)."}
        </Caption1>
      </div>
    </>
  );
}
