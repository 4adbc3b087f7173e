/** A structured result (extraction or triage): field, value, confidence; what needs a person's review. */
import { Badge, Caption1, makeStyles, tokens } from "@fluentui/react-components";
import { humanize, percent, structured } from "../shared/result";

const useStyles = makeStyles({
  list: { margin: 0, display: "grid", gridTemplateColumns: "minmax(80px, 38%) 1fr", columnGap: tokens.spacingHorizontalS, rowGap: tokens.spacingVerticalXS },
  name: { color: tokens.colorNeutralForeground3, fontSize: tokens.fontSizeBase200 },
  value: { margin: 0, overflowWrap: "anywhere", display: "flex", gap: tokens.spacingHorizontalXS, alignItems: "baseline", flexWrap: "wrap" },
  label: { fontSize: tokens.fontSizeBase400, fontWeight: tokens.fontWeightSemibold },
});

function confidenceColor(c: number): "success" | "warning" | "danger" {
  return c >= 0.8 ? "success" : c >= 0.5 ? "warning" : "danger";
}

export function ResultView({ result }: { result: unknown }) {
  const styles = useStyles();
  const label = (result as { label?: unknown })?.label;
  const data = structured(result);
  return (
    <div data-testid="result">
      {typeof label === "string" && (
        <p className={styles.value}>
          <span className={styles.label}>{label}</span>
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
                {row.confidence !== undefined && <Badge size="small" appearance="tint" color={confidenceColor(row.confidence)}>{percent(row.confidence)}</Badge>}
              </dd>
            </div>
          ))}
        </dl>
      )}
      {typeof label !== "string" && data.confidence !== undefined && <Caption1>Overall confidence {percent(data.confidence)}</Caption1>}
      {data.problems.length > 0 && <Caption1 as="p">Checks that failed: {data.problems.join("; ")}</Caption1>}
      {data.needsReview && <Caption1 as="p">Sent to the review queue for a person to check.</Caption1>}
    </div>
  );
}
