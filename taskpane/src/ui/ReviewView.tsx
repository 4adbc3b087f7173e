/**
 * The review queue: results a person should check, made fast. Each review opens with its fields
 * prefilled, to be corrected in place, and the text it was read from beside them (side by side where the
 * pane is wider than 480 px, stacked below). The keyboard: Enter accepts (or saves the corrections), J and
 * K move between items, E edits (focuses the first field). Decisions go out as the person the pane knows
 * (Outlook's user, else the name and email in Settings; lineage records both) with when the review was
 * opened, so GET /v1/metrics/quality can report the time to decision. A workflow waiting for a person links
 * here with its review id: that card is brought forward.
 */
import { forwardRef, useCallback, useEffect, useImperativeHandle, useRef, useState } from "react";
import { Badge, Button, Caption1, Field, Input, Spinner, Text, Textarea, makeStyles, tokens } from "@fluentui/react-components";
import { ArrowClockwiseRegular, CheckmarkRegular, DismissRegular, EditRegular, SaveRegular } from "@fluentui/react-icons";
import { ApiError } from "../api/http";
import type { Person, Review, ReviewDecision, ReviewsOut } from "../api/types";
import { personLabel } from "../shared/identity";
import { humanize, percent, structured } from "../shared/result";
import { changedFields, decisionFor, moveIndex, prefilledValues, queuedSourceOf, reviewKey, sourceTextOf } from "../shared/review";
import { usePane } from "./context";
import { IdentityNotice } from "./IdentityNotice";
import { LineageLink } from "./LineageLink";
import { ProblemBar } from "./ProblemBar";
import { confidenceColor } from "./ResultView";
import { useStyles } from "./styles";

const useLocal = makeStyles({
  body: {
    display: "grid",
    gridTemplateColumns: "1fr",
    gap: tokens.spacingVerticalS,
    "@media (min-width: 481px)": { gridTemplateColumns: "minmax(0, 1fr) minmax(0, 1fr)", columnGap: tokens.spacingHorizontalM },
  },
  fields: { display: "flex", flexDirection: "column", gap: tokens.spacingVerticalXS, minWidth: 0 },
  source: {
    margin: 0,
    minWidth: 0,
    maxHeight: "240px",
    overflowY: "auto",
    padding: tokens.spacingHorizontalS,
    borderRadius: tokens.borderRadiusMedium,
    border: `1px solid ${tokens.colorNeutralStroke2}`,
    backgroundColor: tokens.colorNeutralBackground1,
    whiteSpace: "pre-wrap",
    overflowWrap: "anywhere",
    fontFamily: tokens.fontFamilyBase,
    fontSize: tokens.fontSizeBase200,
  },
  keys: { color: tokens.colorNeutralForeground3 },
});

/** What the queue asks of the current card: decide it, or start correcting it. */
interface CardHandle {
  submit(): void;
  edit(): void;
  focus(): void;
}

/** The text the review's run read: the one the review carries while pending, else from the run's lineage
 * record (kept where the server retains inputs); undefined while it is being read, null where neither has it. */
function useSourceText(review: Review): string | null | undefined {
  const { api } = usePane();
  const queued = queuedSourceOf(review);
  const [text, setText] = useState<string | null | undefined>(undefined);
  useEffect(() => {
    if (queued !== null) return;
    let live = true;
    api.get<unknown>(`/v1/runs/${encodeURIComponent(review.runId)}`).then(
      (run) => { if (live) setText(sourceTextOf(run)); },
      () => { if (live) setText(null); },
    );
    return () => { live = false; };
  }, [api, review.runId, queued]);
  return queued ?? text;
}

interface CardProps {
  /** null: the pane does not know who the user is, so it cannot decide (IdentityNotice says why). */
  review: Review; reviewer: Person | null; current: boolean; onDone: (id: string, note: string) => void; onPick: () => void;
}

const ReviewCard = forwardRef<CardHandle, CardProps>(function ReviewCard({ review, reviewer, current, onDone, onPick }, ref) {
  const { api } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const card = useRef<HTMLElement>(null);
  const firstField = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  // When the person opened this review: first the current item of the queue (or focused), not merely
  // listed below another; the server times the decision from it.
  const openedAt = useRef<Date | null>(null);
  const markOpened = () => { openedAt.current ??= new Date(); };
  const rows = structured({ data: review.data, fields: review.fields }).rows;
  const [values, setValues] = useState<Record<string, string>>(() => prefilledValues(rows));
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const source = useSourceText(review);
  const changed = Object.keys(changedFields(rows, values)).length > 0;

  useEffect(() => {
    if (!current) return;
    markOpened();
    card.current?.scrollIntoView?.({ block: "nearest" });
  }, [current]);

  const decide = async (decision: ReviewDecision) => {
    setSending(true);
    setError(null);
    try {
      await api.post(`/v1/reviews/${encodeURIComponent(review.id)}`, decision);
      onDone(review.id, decision.decision === "accept" ? "Accepted." : decision.decision === "edit" ? "Saved your corrections." : "Rejected.");
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError("server", String(e));
      if (err.status === 409) onDone(review.id, "Someone already decided that one.");
      else setError(err);
    } finally {
      setSending(false);
    }
  };
  const submit = () => {
    if (reviewer && !sending) void decide(decisionFor(rows, values, reviewer, openedAt.current ?? new Date()));
  };
  const reject = () => {
    if (reviewer && !sending) void decide({ decision: "reject", reviewer, openedAt: (openedAt.current ?? new Date()).toISOString() });
  };
  useImperativeHandle(ref, () => ({
    submit,
    edit: () => firstField.current?.focus(),
    focus: () => card.current?.focus(),
  }));

  return (
    <article ref={card} tabIndex={-1} className={`${styles.itemCard} ${current ? styles.focused : ""}`}
      aria-label={`Review of ${humanize(review.task)}`} aria-current={current || undefined}
      data-testid="review-item" data-review-id={review.id} onFocusCapture={() => { markOpened(); onPick(); }}>
      <div className={styles.row}>
        <Text weight="semibold" className={styles.grow}>{humanize(review.templateId.split("@")[0] || review.task)}</Text>
        {review.confidence !== null && <Badge appearance="tint" color={confidenceColor(review.confidence)}>{percent(review.confidence)}</Badge>}
      </div>
      {review.reasons.length > 0 && <Caption1>Why: {review.reasons.join("; ")}</Caption1>}
      <div className={local.body}>
        <div className={local.fields}>
          {rows.map((row, i) => {
            const label = `${humanize(row.name)}${row.confidence !== undefined && row.value ? ` (${percent(row.confidence)})` : ""}`;
            const change = (value: string) => setValues({ ...values, [row.name]: value });
            return (
              <Field key={row.name} label={label} size="small">
                {typeof row.raw === "object" && row.raw !== null
                  ? <Textarea size="small" resize="vertical" aria-label={humanize(row.name)} value={values[row.name] ?? ""}
                      ref={i === 0 ? firstField : undefined} onChange={(_, d) => change(d.value)} />
                  : <Input size="small" aria-label={humanize(row.name)} value={values[row.name] ?? ""}
                      ref={i === 0 ? firstField : undefined} onChange={(_, d) => change(d.value)} />}
              </Field>
            );
          })}
        </div>
        {source === undefined ? <Spinner size="extra-tiny" label="Reading the source…" />
          : source === null
            ? <Caption1 className={styles.muted} data-testid="review-source-missing">The source text was not kept with this review, and the server does not retain inputs (retain_inputs).</Caption1>
            : <pre className={local.source} aria-label="Source text" data-testid="review-source">{source}</pre>}
      </div>
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} />}
      <div className={styles.row}>
        <Button size="small" appearance="primary" icon={changed ? <SaveRegular /> : <CheckmarkRegular />}
          disabled={sending || !reviewer} onClick={submit}>{changed ? "Save corrections" : "Accept"}</Button>
        <Button size="small" icon={<EditRegular />} disabled={sending || !reviewer || rows.length === 0}
          onClick={() => firstField.current?.focus()}>Edit</Button>
        {changed && <Button size="small" disabled={sending} onClick={() => setValues(prefilledValues(rows))}>Undo</Button>}
        <Button size="small" icon={<DismissRegular />} disabled={sending || !reviewer} onClick={reject}>Reject</Button>
        <Caption1><LineageLink runId={review.runId}>Lineage</LineageLink></Caption1>
      </div>
    </article>
  );
});

export function ReviewView() {
  const { api, identity, focus } = usePane();
  const styles = useStyles();
  const local = useLocal();
  const [reviews, setReviews] = useState<Review[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [decidedHere, setDecidedHere] = useState<string[]>([]);
  const [current, setCurrent] = useState(0);
  const cards = useRef(new Map<string, CardHandle>());
  const reviewer = identity?.person ?? null;

  const load = useCallback(() => {
    setError(null);
    api.get<ReviewsOut>("/v1/reviews?status=pending").then(
      (payload) => setReviews(payload.reviews),
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError("server", String(e))),
    );
  }, [api]);
  useEffect(load, [load]);

  const ordered = reviews && [...reviews].sort((a, b) => Number(b.id === focus) - Number(a.id === focus));
  const index = ordered ? Math.min(current, Math.max(0, ordered.length - 1)) : 0;
  const currentId = ordered?.[index]?.id;

  // The queue's keys, wherever focus is in the view (reviewKey leaves typing and buttons alone).
  useEffect(() => {
    if (!ordered || ordered.length === 0) return;
    const onKey = (e: KeyboardEvent) => {
      const key = reviewKey(e);
      if (!key) return;
      e.preventDefault();
      if (key === "next" || key === "previous") {
        const next = moveIndex(index, ordered.length, key);
        setCurrent(next);
        cards.current.get(ordered[next].id)?.focus();
      } else if (currentId) {
        const card = cards.current.get(currentId);
        if (key === "accept") card?.submit();
        else card?.edit();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [ordered, index, currentId]);

  return (
    <div className={styles.section}>
      {reviewer
        ? <Caption1 className={styles.muted} data-testid="reviewer">You decide as {personLabel(reviewer)}.</Caption1>
        : <IdentityNotice doing="Deciding a review" />}
      <div className={styles.row}>
        <Text className={styles.grow}>{reviews === null ? "" : reviews.length === 0 ? "Nothing to review." : `${reviews.length} to review`}</Text>
        <Button size="small" appearance="subtle" icon={<ArrowClockwiseRegular />} onClick={load}>Refresh</Button>
      </div>
      {ordered && ordered.length > 0 && (
        <Caption1 className={local.keys} data-testid="review-keys">Enter accepts · J / K next, previous · E edits</Caption1>
      )}
      {notice && <Caption1 role="status">{notice}</Caption1>}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} onRetry={load} />}
      {reviews === null && !error && <Spinner size="tiny" label="Loading the queue…" />}
      {focus && reviews && !reviews.some((r) => r.id === focus) && !decidedHere.includes(focus) && (
        <Caption1 role="status" data-testid="review-gone">The review you opened is no longer waiting: someone decided it.</Caption1>
      )}
      {ordered?.map((r, i) => (
        <ReviewCard key={r.id} review={r} reviewer={reviewer} current={r.id === currentId}
          ref={(handle) => { if (handle) cards.current.set(r.id, handle); else cards.current.delete(r.id); }}
          onPick={() => setCurrent(i)}
          onDone={(id, note) => { setNotice(note); setDecidedHere((ids) => [...ids, id]); setReviews((list) => list?.filter((x) => x.id !== id) ?? null); }} />
      ))}
    </div>
  );
}
