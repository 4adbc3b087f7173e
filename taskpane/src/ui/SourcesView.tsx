/** The sources an answer cites: document, page, the passage used, and how well it matched. */
import { Caption1, makeStyles, tokens } from "@fluentui/react-components";
import { DocumentTextRegular } from "@fluentui/react-icons";
import type { Source } from "../api/types";

const useStyles = makeStyles({
  list: { margin: 0, padding: 0, listStyleType: "none", display: "flex", flexDirection: "column", gap: tokens.spacingVerticalS },
  item: {
    padding: tokens.spacingHorizontalS,
    borderRadius: tokens.borderRadiusMedium,
    backgroundColor: tokens.colorNeutralBackground2,
    overflowWrap: "anywhere",
    ":focus-visible": { outline: `2px solid ${tokens.colorStrokeFocus2}` },
  },
  target: { outline: `2px solid ${tokens.colorBrandStroke1}` },
  title: { display: "flex", gap: tokens.spacingHorizontalXS, alignItems: "center", fontWeight: tokens.fontWeightSemibold },
  snippet: { margin: `${tokens.spacingVerticalXS} 0 0`, color: tokens.colorNeutralForeground2, fontSize: tokens.fontSizeBase200 },
});

function name(source: Source): string {
  const raw = source.title || source.source || source.path || "Document";
  return raw.split(/[\\/]/).pop() || raw;
}

export function SourcesView({ sources }: { sources: Source[] }) {
  const styles = useStyles();
  return (
    <section aria-label="Sources" data-testid="sources">
      <Caption1>Sources</Caption1>
      <ol className={styles.list}>
        {sources.map((source) => {
          const where = [source.page != null ? `page ${source.page}` : null, `match ${source.score.toFixed(2)}`].filter(Boolean).join(" · ");
          return (
            <li key={source.number} id={`source-${source.number}`} tabIndex={-1} className={styles.item} title={source.path ?? source.source}>
              <span className={styles.title}>[{source.number}] <DocumentTextRegular aria-hidden /> {name(source)}</span>
              <Caption1>{where}</Caption1>
              {source.snippet && <p className={styles.snippet}>“{source.snippet}”</p>}
            </li>
          );
        })}
      </ol>
    </section>
  );
}
