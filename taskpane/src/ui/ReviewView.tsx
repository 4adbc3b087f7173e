/**
 * The review queue: results a person should check. Accept, edit the fields, or reject, as the person the
 * pane knows (Outlook's user, else the name and email in Settings; lineage records both with the
 * decision). A workflow waiting for a person links here with its review id: that card is brought forward.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { Badge, Button, Caption1, Field, Input, Spinner, Text, Textarea } from "@fluentui/react-components";
import { ArrowClockwiseRegular, CheckmarkRegular, DismissRegular, EditRegular } from "@fluentui/react-icons";
import { ApiError } from "../api/http";
import type { Person, Review, ReviewDecision, ReviewsOut } from "../api/types";
import { personLabel } from "../shared/identity";
import { editable, humanize, parseEdited, percent, structured } from "../shared/result";
import { usePane } from "./context";
import { IdentityNotice } from "./IdentityNotice";
import { LineageLink } from "./LineageLink";
import { ProblemBar } from "./ProblemBar";
import { confidenceColor } from "./ResultView";
import { useStyles } from "./styles";

function ReviewCard({ review, reviewer, focused, onDone }: {
  /** null: the pane does not know who the user is, so it cannot decide (IdentityNotice says why). */
  review: Review; reviewer: Person | null; focused: boolean; onDone: (id: string, note: string) => void;
}) {
  const { api } = usePane();
  const styles = useStyles();
  const card = useRef<HTMLElement>(null);
  useEffect(() => {
    if (focused) card.current?.scrollIntoView?.({ block: "nearest" });
  }, [focused]);
  const [editing, setEditing] = useState(false);
  const [values, setValues] = useState<Record<string, string>>({});
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const rows = structured({ data: review.data, fields: review.fields }).rows;

  const decide = async (decision: ReviewDecision) => {
    if (!reviewer) return;
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
  const startEdit = () => {
    setValues(Object.fromEntries(rows.map((r) => [r.name, editable(r.raw)])));
    setEditing(true);
  };
  const saveEdit = () => {
    const changed = Object.fromEntries(rows
      .filter((r) => values[r.name] !== editable(r.raw))
      .map((r) => [r.name, parseEdited(values[r.name], r.raw)]));
    if (Object.keys(changed).length === 0) {
      setError(new ApiError("invalid", "Nothing was changed: use Accept to keep the result as it is."));
      return;
    }
    if (reviewer) void decide({ decision: "edit", fields: changed, reviewer });
  };

  return (
    <article ref={card} className={`${styles.itemCard} ${focused ? styles.focused : ""}`} aria-label={`Review of ${humanize(review.task)}`}
      aria-current={focused || undefined} data-testid="review-item" data-review-id={review.id}>
      <div className={styles.row}>
        <Text weight="semibold" className={styles.grow}>{humanize(review.templateId.split("@")[0] || review.task)}</Text>
        {review.confidence !== null && <Badge appearance="tint" color={confidenceColor(review.confidence)}>{percent(review.confidence)}</Badge>}
      </div>
      {review.reasons.length > 0 && <Caption1>Why: {review.reasons.join("; ")}</Caption1>}
      {rows.map((row) =>
        editing ? (
          <Field key={row.name} label={humanize(row.name)} size="small">
            {typeof row.raw === "object" && row.raw !== null
              ? <Textarea size="small" resize="vertical" value={values[row.name] ?? ""} onChange={(_, d) => setValues({ ...values, [row.name]: d.value })} />
              : <Input size="small" value={values[row.name] ?? ""} onChange={(_, d) => setValues({ ...values, [row.name]: d.value })} />}
          </Field>
        ) : (
          <Caption1 key={row.name} style={{ whiteSpace: "pre-wrap" }}>
            <span className={styles.muted}>{humanize(row.name)}:</span> {row.value || "—"}
            {row.confidence !== undefined && row.value ? ` (${percent(row.confidence)})` : ""}
          </Caption1>
        ),
      )}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} />}
      <div className={styles.row}>
        {editing ? (
          <>
            <Button size="small" appearance="primary" icon={<CheckmarkRegular />} disabled={sending || !reviewer} onClick={saveEdit}>Save</Button>
            <Button size="small" disabled={sending} onClick={() => setEditing(false)}>Back</Button>
          </>
        ) : (
          <>
            <Button size="small" appearance="primary" icon={<CheckmarkRegular />} disabled={sending || !reviewer}
              onClick={() => { if (reviewer) void decide({ decision: "accept", reviewer }); }}>Accept</Button>
            <Button size="small" icon={<EditRegular />} disabled={sending || !reviewer || rows.length === 0} onClick={startEdit}>Edit</Button>
            <Button size="small" icon={<DismissRegular />} disabled={sending || !reviewer}
              onClick={() => { if (reviewer) void decide({ decision: "reject", reviewer }); }}>Reject</Button>
          </>
        )}
        <Caption1><LineageLink runId={review.runId}>Lineage</LineageLink></Caption1>
      </div>
    </article>
  );
}

export function ReviewView() {
  const { api, identity, focus } = usePane();
  const styles = useStyles();
  const [reviews, setReviews] = useState<Review[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [decidedHere, setDecidedHere] = useState<string[]>([]);
  const reviewer = identity?.person ?? null;

  const load = useCallback(() => {
    setError(null);
    api.get<ReviewsOut>("/v1/reviews?status=pending").then(
      (payload) => setReviews(payload.reviews),
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError("server", String(e))),
    );
  }, [api]);
  useEffect(load, [load]);

  return (
    <div className={styles.section}>
      {reviewer
        ? <Caption1 className={styles.muted} data-testid="reviewer">You decide as {personLabel(reviewer)}.</Caption1>
        : <IdentityNotice doing="Deciding a review" />}
      <div className={styles.row}>
        <Text className={styles.grow}>{reviews === null ? "" : reviews.length === 0 ? "Nothing to review." : `${reviews.length} to review`}</Text>
        <Button size="small" appearance="subtle" icon={<ArrowClockwiseRegular />} onClick={load}>Refresh</Button>
      </div>
      {notice && <Caption1 role="status">{notice}</Caption1>}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message, code: error.code }} onRetry={load} />}
      {reviews === null && !error && <Spinner size="tiny" label="Loading the queue…" />}
      {focus && reviews && !reviews.some((r) => r.id === focus) && !decidedHere.includes(focus) && (
        <Caption1 role="status" data-testid="review-gone">The review you opened is no longer waiting: someone decided it.</Caption1>
      )}
      {reviews && [...reviews].sort((a, b) => Number(b.id === focus) - Number(a.id === focus)).map((r) => (
        <ReviewCard key={r.id} review={r} reviewer={reviewer} focused={r.id === focus}
          onDone={(id, note) => { setNotice(note); setDecidedHere((ids) => [...ids, id]); setReviews((list) => list?.filter((x) => x.id !== id) ?? null); }} />
      ))}
    </div>
  );
}
