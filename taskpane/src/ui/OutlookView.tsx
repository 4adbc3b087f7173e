/** Outlook: summarize the message or the thread, draft a reply, extract, triage, start a workflow on it. */
import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { Button, Caption1, Field, Input, MessageBar, MessageBarBody, Select, Spinner, Textarea, Text } from "@fluentui/react-components";
import {
  ArrowReplyAllRegular, ArrowReplyRegular, ClipboardTaskListLtrRegular, FlashRegular, MailRegular, ReceiptRegular, SparkleRegular,
  TagRegular, TextQuoteRegular, TextHeader1Regular,
} from "@fluentui/react-icons";
import type { DraftReplyRequest, SummarizeRequest } from "../api/types";
import type { ClassifyOut, ClassifyRequest, ExtractRequest } from "../api/types";
import { HostError, type MailItem, type OutlookHost } from "../hosts";
import { conversationThread, type Thread } from "../shared/conversation";
import { LENGTHS, TONES } from "../shared/prefs";
import { headlineRequest, subjectFrom } from "../shared/headline";
import { IDLE, isActive, runReducer } from "../shared/run";
import { runStream } from "../shared/stream";
import { requestIdFor, WORKFLOW_FOR_SCHEMA, workflowInputs } from "../shared/workflow";
import { usePane } from "./context";
import { RunPanel } from "./RunPanel";
import { useStyles } from "./styles";
import { WorkflowPanel } from "./WorkflowPanel";

/** A stand-in for the run id of a run the server did not name (it always does): one per run. */
const localRunIds = new WeakMap<object, string>();
function localRunId(request: object): string {
  let id = localRunIds.get(request);
  if (!id) localRunIds.set(request, (id = `local-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`));
  return id;
}

/**
 * The draft's subject line from the headline summary of the message: its own small run beside the pane's
 * main one (so a draft on screen stays), cancelled when the message changes or the pane closes.
 */
function useSuggestedSubject() {
  const { api } = usePane();
  const [state, dispatch] = useReducer(runReducer, IDLE);
  const controller = useRef<AbortController | null>(null);
  const suggest = useCallback((item: MailItem) => {
    controller.current?.abort();
    const c = new AbortController();
    controller.current = c;
    void runStream(api, "/v1/summarize", headlineRequest(item.email, item.sourceRef), dispatch, c.signal);
  }, [api]);
  const stop = useCallback(() => {
    controller.current?.abort();
    dispatch({ type: "reset" });
  }, []);
  useEffect(() => () => controller.current?.abort(), []);
  return { state, suggest, stop };
}

export function OutlookView({ host }: { host: OutlookHost }) {
  const { api, run, prefs, setPrefs, server, workflow, identity } = usePane();
  const styles = useStyles();
  const [item, setItem] = useState<MailItem | null>(null);
  const [itemError, setItemError] = useState<string | null>(null);
  const [instructions, setInstructions] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const [remote, setRemote] = useState<Thread | null>(null);
  const busy = isActive(run.state);
  const headline = useSuggestedSubject();
  const [subject, setSubject] = useState("");
  const suggested = subjectFrom(headline.state);
  const headlineBusy = isActive(headline.state);
  useEffect(() => { if (suggested) setSubject(suggested); }, [suggested]);

  const load = useCallback(() => {
    setNotice(null);
    host.readItem().then(
      (read) => { setItem(read); setItemError(null); },
      (error: unknown) => { setItem(null); setItemError(error instanceof HostError ? error.message : `Outlook could not read this message: ${(error as Error).message}`); },
    );
  }, [host]);

  // Signed in to Microsoft 365, the server knows the whole conversation, not just what is quoted.
  useEffect(() => {
    setRemote(null);
    if (!item?.conversationId) return;
    const c = new AbortController();
    void conversationThread(api, item.conversationId, c.signal).then((t) => { if (!c.signal.aborted) setRemote(t); });
    return () => c.abort();
  }, [api, item]);

  const { reset } = run;
  const { reset: resetWorkflow } = workflow;
  const { stop: stopHeadline } = headline;
  useEffect(() => {
    load();
    return host.onItemChanged(() => { reset(); resetWorkflow(); stopHeadline(); setSubject(""); load(); });
  }, [host, load, reset, resetWorkflow, stopHeadline]);

  const summaryBody = useCallback((withThread: boolean): SummarizeRequest | null => item && {
    email: withThread && remote ? remote.email : item.email,
    thread: withThread ? remote?.thread ?? item.earlier : [],
    sentences: prefs.sentences,
    client: "outlook",
    sourceRef: item.sourceRef,
  }, [item, remote, prefs.sentences]);

  // Read the message into the model's cache while the user looks at it: Summarize then starts at once.
  const ready = server.reach === "ok" && server.health?.model === "ready";
  useEffect(() => {
    const body = summaryBody(false);
    if (!body || !prefs.warmUp || !ready) return;
    const c = new AbortController();
    api.post("/v1/prepare", body, c.signal).catch(() => undefined); // best effort: never shown
    return () => c.abort();
  }, [api, summaryBody, prefs.warmUp, ready]);

  if (itemError) {
    return (
      <div className={styles.section}>
        <MessageBar intent="info"><MessageBarBody>{itemError}</MessageBarBody></MessageBar>
        <div><Button onClick={load}>Try again</Button></div>
      </div>
    );
  }

  const earlier = remote?.thread.length ?? item?.earlier.length ?? 0;
  const summarize = (withThread: boolean) => {
    const body = summaryBody(withThread);
    if (body) run.start({ label: withThread ? "Summary of the thread" : "Summary of this message", path: "/v1/summarize", body });
  };
  const draft = () => {
    if (!item) return;
    const body: DraftReplyRequest = {
      email: item.email, thread: item.earlier, tone: prefs.tone, length: prefs.length, instructions: instructions.slice(0, 2000),
      signature: prefs.signature, client: "outlook", sourceRef: item.sourceRef,
    };
    run.start({ label: "Draft reply", path: "/v1/draft-reply", body });
  };
  const extract = (schema: string, label: string) => {
    if (!item) return;
    const body: ExtractRequest = { schema, email: item.email, client: "outlook", sourceRef: item.sourceRef };
    run.start({ label, path: "/v1/extract", body });
  };
  const triage = () => {
    if (!item) return;
    const body: ClassifyRequest = { email: item.email, client: "outlook", sourceRef: item.sourceRef };
    run.start({ label: "Triage", path: "/v1/classify", body, mode: "json" });
  };

  // An extraction of action items or invoice fields leads to its workflow, started on this message.
  const schema = run.request?.path === "/v1/extract" ? (run.request.body as ExtractRequest).schema : undefined;
  const kind = schema !== undefined && item ? WORKFLOW_FOR_SCHEMA[schema] : undefined;
  const runId = run.state.meta?.runId ?? run.state.done?.runId;
  const requestId = kind && run.request ? requestIdFor(kind.automation, runId ?? localRunId(run.request)) : undefined;
  const ours = workflow.state?.request.requestId === requestId ? workflow.state : null;
  const startWorkflow = () => {
    if (!kind || !item || !requestId) return;
    workflow.start({
      automation: kind.automation, title: kind.title, requestId, inputs: workflowInputs(item),
      actor: identity?.person,
    });
  };

  const label = (run.state.result as ClassifyOut | undefined)?.label;
  const draftText = run.state.text.trim();
  const actions = run.request?.path === "/v1/draft-reply" && draftText ? (
    host.mode === "read" ? (
      <div className={styles.row}>
        <Button appearance="primary" icon={<ArrowReplyRegular />} onClick={() => host.openReply(draftText)}>Open in reply</Button>
        <Button icon={<ArrowReplyAllRegular />} onClick={() => host.openReply(draftText, true)}>Reply all</Button>
      </div>
    ) : (
      <div className={styles.row}>
        <Button appearance="primary" icon={<TextQuoteRegular />}
          onClick={() => host.insertIntoDraft(draftText).then(() => setNotice("Inserted into your message."), (e: Error) => setNotice(e.message))}>
          Insert into message
        </Button>
      </div>
    )
  ) : run.request?.path === "/v1/classify" && typeof label === "string" && host.canCategorize ? (
    <div className={styles.row}>
      <Button icon={<TagRegular />}
        onClick={() => host.addCategory(label).then(() => setNotice(`Category “${label}” applied.`),
          (e: Error) => setNotice(`Outlook could not apply “${label}”: ${e.message}. Create a category with that name first.`))}>
        Apply as category
      </Button>
    </div>
  ) : kind && (!ours || ours.phase === "failed") ? (
    <div className={styles.row}>
      <Button appearance="primary" icon={<FlashRegular />} onClick={startWorkflow} data-testid="start-workflow">{kind.button}</Button>
    </div>
  ) : undefined;

  return (
    <>
      <div className={styles.section}>
        <div className={styles.itemCard} data-testid="item">
          <Text weight="semibold" truncate wrap={false} title={item?.email.subject ?? ""}>
            <MailRegular aria-hidden /> {item ? item.email.subject || "(no subject)" : "Reading the message…"}
          </Text>
          {item && (
            <Caption1 className={styles.muted}>
              {item.email.from ? `From ${item.email.from}` : host.mode === "compose" ? "Your draft" : ""}
              {earlier > 0 ? ` · ${earlier} earlier message${earlier === 1 ? "" : "s"} ${remote ? "in Microsoft 365" : "quoted"}` : ""}
            </Caption1>
          )}
        </div>

        <div className={styles.row}>
          <Button appearance="primary" icon={<SparkleRegular />} disabled={!item || busy} onClick={() => summarize(false)}>
            Summarize
          </Button>
          <Button disabled={!item || busy || earlier === 0} onClick={() => summarize(true)}
            title={earlier === 0 ? "No earlier messages are quoted in this one" : undefined}>
            Summarize thread
          </Button>
        </div>
      </div>
      <RunPanel actions={actions} />
      {workflow.state && <WorkflowPanel state={workflow.state} />}
      {notice && (
        <div className={styles.section}>
          <MessageBar intent="info"><MessageBarBody>{notice}</MessageBarBody></MessageBar>
        </div>
      )}

      <div className={styles.section}>
        <h2 className={styles.sectionTitle}>Reply</h2>
        <div className={styles.fieldGrid}>
          <Field label="Tone" size="small">
            <Select size="small" value={prefs.tone} onChange={(_, d) => setPrefs({ ...prefs, tone: d.value as typeof prefs.tone })}>
              {TONES.map((t) => <option key={t} value={t}>{t[0].toUpperCase() + t.slice(1)}</option>)}
            </Select>
          </Field>
          <Field label="Length" size="small">
            <Select size="small" value={prefs.length} onChange={(_, d) => setPrefs({ ...prefs, length: d.value as typeof prefs.length })}>
              {LENGTHS.map((l) => <option key={l} value={l}>{l[0].toUpperCase() + l.slice(1)}</option>)}
            </Select>
          </Field>
        </div>
        <Field label="What to say (optional)" size="small">
          <Textarea size="small" resize="vertical" value={instructions} maxLength={2000}
            placeholder="e.g. accept, and ask for the figures by Monday" onChange={(_, d) => setInstructions(d.value)} />
        </Field>
        <div className={styles.row}>
          <Button icon={<ArrowReplyRegular />} disabled={!item || busy} onClick={draft}>Draft reply</Button>
        </div>
        <Field label="Subject" size="small" hint={host.mode === "read"
          ? "Outlook's reply keeps its own subject: copy this into it, or use it for a new message."
          : undefined}>
          <Input size="small" value={subject} onChange={(_, d) => setSubject(d.value)} data-testid="draft-subject"
            placeholder="A one-line summary of the message" />
        </Field>
        <div className={styles.row}>
          <Button size="small" icon={headlineBusy ? <Spinner size="extra-tiny" /> : <TextHeader1Regular />}
            disabled={!item || headlineBusy} onClick={() => { if (item) headline.suggest(item); }}>Suggest subject</Button>
          {host.mode === "compose" && (
            <Button size="small" disabled={!subject.trim()}
              onClick={() => host.setSubject(subject.trim()).then(() => setNotice("Subject set."), (e: Error) => setNotice(`Outlook could not set the subject: ${e.message}`))}>
              Use as subject
            </Button>
          )}
        </div>
        {headline.state.problem && (
          <Caption1 className={styles.muted} data-testid="subject-problem">No subject: {headline.state.problem.message}</Caption1>
        )}
      </div>

      <div className={styles.section}>
        <h2 className={styles.sectionTitle}>Extract and triage</h2>
        <div className={styles.row}>
          <Button size="small" icon={<ClipboardTaskListLtrRegular />} disabled={!item || busy}
            onClick={() => extract("email_actions", "Action items")}>Action items</Button>
          <Button size="small" icon={<ReceiptRegular />} disabled={!item || busy}
            onClick={() => extract("invoice", "Invoice fields")}>Invoice fields</Button>
          <Button size="small" icon={<TagRegular />} disabled={!item || busy} onClick={triage}>Triage label</Button>
        </div>
      </div>

    </>
  );
}
