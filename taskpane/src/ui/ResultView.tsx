/** A structured result (extraction or triage): field, value, confidence; checks that failed; review. */
import { Badge, Caption1, makeStyles, tokens } from "@fluentui/react-components";
import { humanize, percent, structured } from "../shared/result";

const useStyles = makeStyles({
  list: { margin: 0, display: "grid", gridTemplateColumns: "minmax(80px, 36%) 1fr", columnGap: tokens.spacingHorizontalS, rowGap: tokens.spacingVerticalXS },
  name: { color: tokens.colorNeutralForeground3, fontSize: tokens.fontSizeBase200, overflowWrap: "anywhere" },
  value: { margin: 0, overflowWrap: "anywhere", whiteSpace: "pre-wrap", display: "flex", gap: tokens.spacingHorizontalXS, alignItems: "baseline", flexWrap: "wrap" },
  label: { fontSize: tokens.fontSizeBase400, fontWeight: tokens.fontWeightSemibold },
  block: { display: "flex", flexDirection: "column", gap: tokens.spacingVerticalS },
  reasons: { margin: `${tokens.spacingVerticalXXS} 0 0`, paddingLeft: tokens.spacingHorizontalL },
});

export function confidenceColor(c: number): "success" | "warning" | "danger" {
  return c >= 0.8 ? "success" : c >= 0.5 ? "warning" : "danger";
}

export function ResultView({ result }: { result: unknown }) {
  const styles = useStyles();
  const data = structured(result);
  return (
    <div className={styles.block} data-testid="result">
      {data.label !== undefined && (
        <p className={styles.value}>
          <span className={styles.label}>{humanize(data.label)}</span>
          {data.confidence !== undefined && <Badge appearance="tint" color={confidenceColor(data.confidence)}>{percent(data.confidence)}</Badge>}
        </p>
      )}
      {data.rows.length > 0 && (
        <dl className={styles.list}>
          {data.rows.map((row) => (
            <div key={row.name} style={{ display: "contents" }}>
              <dt className={styles.name}>{humanize(row.name)}</dt>
              <dd className={styles.value}>
                {row.value || <span className={styles.name}>not found</span>}
                {row.confidence !== undefined && row.value && (
                  <Badge size="small" appearance="tint" color={confidenceColor(row.confidence)}>{percent(row.confidence)}</Badge>
                )}
              </dd>
            </div>
          ))}
        </dl>
      )}
      {data.label === undefined && data.confidence !== undefined && <Caption1>Overall confidence {percent(data.confidence)}</Caption1>}
      {data.reviewId ? (
        // The review's reasons already name the checks that failed.
        <Caption1 data-testid="sent-to-review">
          Sent to the review queue for a person to check{data.reasons.length ? ":" : "."}
          {data.reasons.length > 0 && <ul className={styles.reasons}>{data.reasons.map((r) => <li key={r}>{r}</li>)}</ul>}
        </Caption1>
      ) : data.problems.length > 0 && (
        <Caption1>Checks that failed: {data.problems.join("; ")}</Caption1>
      )}
    </div>
  );
}
