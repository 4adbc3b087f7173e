/** The review queue: extractions a person should check. Accept, edit the fields, or reject. */
import { useCallback, useEffect, useState } from "react";
import { Badge, Button, Caption1, Field, Input, MessageBar, MessageBarBody, Spinner, Text } from "@fluentui/react-components";
import { ArrowClockwiseRegular, CheckmarkRegular, DismissRegular, EditRegular } from "@fluentui/react-icons";
import { ApiError } from "../api/http";
import type { Review, ReviewDecision } from "../api/pending";
import { display, humanize, parseEdited, percent } from "../shared/result";
import { usePane } from "./context";
import { ProblemBar } from "./ProblemBar";
import { useStyles } from "./styles";

function reviewsOf(payload: unknown): Review[] {
  if (Array.isArray(payload)) return payload as Review[];
  const items = (payload as { items?: unknown; reviews?: unknown })?.items ?? (payload as { reviews?: unknown })?.reviews;
  return Array.isArray(items) ? (items as Review[]) : [];
}

function ReviewCard({ review, onDone }: { review: Review; onDone: (id: string) => void }) {
  const { api, prefs } = usePane();
  const styles = useStyles();
  const [editing, setEditing] = useState(false);
  const [values, setValues] = useState<Record<string, string>>({});
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const fields = review.fields ?? {};

  const decide = async (decision: ReviewDecision) => {
    setSending(true);
    setError(null);
    try {
      await api.post(`/v1/reviews/${encodeURIComponent(review.id)}`, decision);
      onDone(review.id);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError("server", String(e)));
    } finally {
      setSending(false);
    }
  };
  const reviewer = prefs.reviewer || undefined;
  const startEdit = () => {
    setValues(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, display(v)])));
    setEditing(true);
  };
  const saveEdit = () => {
    const edited = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, parseEdited(v, fields[k])]));
    void decide({ decision: "edit", fields: edited, reviewer });
  };

  return (
    <article className={styles.itemCard} aria-label={`Review ${review.schema ?? review.task ?? ""}`}>
      <div className={styles.row}>
        <Text weight="semibold">{humanize(review.schema ?? review.task ?? "Extraction")}</Text>
        {review.confidence !== undefined && <Badge appearance="tint" color={review.confidence >= 0.8 ? "success" : "warning"}>{percent(review.confidence)}</Badge>}
      </div>
      {review.reasons && review.reasons.length > 0 && <Caption1>Why: {review.reasons.join("; ")}</Caption1>}
      {Object.entries(fields).map(([name, value]) =>
        editing ? (
          <Field key={name} label={humanize(name)} size="small">
            <Input size="small" value={values[name] ?? ""} onChange={(_, d) => setValues({ ...values, [name]: d.value })} />
          </Field>
        ) : (
          <Caption1 key={name}><span className={styles.muted}>{humanize(name)}:</span> {display(value) || "—"}
            {review.fieldConfidence?.[name] !== undefined && ` (${percent(review.fieldConfidence[name])})`}</Caption1>
        ),
      )}
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message }} />}
      <div className={styles.row}>
        {editing ? (
          <>
            <Button size="small" appearance="primary" icon={<CheckmarkRegular />} disabled={sending} onClick={saveEdit}>Save</Button>
            <Button size="small" disabled={sending} onClick={() => setEditing(false)}>Back</Button>
          </>
        ) : (
          <>
            <Button size="small" appearance="primary" icon={<CheckmarkRegular />} disabled={sending} onClick={() => void decide({ decision: "accept", reviewer })}>Accept</Button>
            <Button size="small" icon={<EditRegular />} disabled={sending || Object.keys(fields).length === 0} onClick={startEdit}>Edit</Button>
            <Button size="small" icon={<DismissRegular />} disabled={sending} onClick={() => void decide({ decision: "reject", reviewer })}>Reject</Button>
          </>
        )}
        {review.runId && <Caption1><a href={`/v1/runs/${encodeURIComponent(review.runId)}`} target="_blank" rel="noopener">Lineage</a></Caption1>}
      </div>
    </article>
  );
}

export function ReviewView() {
  const { api, server } = usePane();
  const styles = useStyles();
  const [reviews, setReviews] = useState<Review[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const available = server.features.reviews;

  const load = useCallback(() => {
    if (!available) return;
    setError(null);
    api.get<unknown>("/v1/reviews?status=pending").then(
      (payload) => setReviews(reviewsOf(payload).filter((r) => !r.status || r.status === "pending")),
      (e: unknown) => setError(e instanceof ApiError ? e : new ApiError("server", String(e))),
    );
  }, [api, available]);
  useEffect(load, [load]);

  if (!available) {
    return (
      <div className={styles.section}>
        <MessageBar intent="info" data-testid="not-available">
          <MessageBarBody>The review queue is not available on this server yet.</MessageBarBody>
        </MessageBar>
      </div>
    );
  }
  return (
    <div className={styles.section}>
      <div className={styles.row}>
        <Text className={styles.grow}>{reviews === null ? "" : reviews.length === 0 ? "Nothing to review." : `${reviews.length} to review`}</Text>
        <Button size="small" appearance="subtle" icon={<ArrowClockwiseRegular />} onClick={load}>Refresh</Button>
      </div>
      {error && <ProblemBar problem={{ kind: error.kind, message: error.message }} onRetry={load} />}
      {reviews === null && !error && <Spinner size="tiny" label="Loading the queue…" />}
      {reviews?.map((r) => <ReviewCard key={r.id} review={r} onDone={(id) => setReviews((list) => list?.filter((x) => x.id !== id) ?? null)} />)}
    </div>
  );
}
