/** Answer text with its citation markers ([1], [2, 3]) as buttons that jump to the cited source. */
import { Fragment } from "react";
import { makeStyles, tokens } from "@fluentui/react-components";
import { citationParts } from "../shared/text";

const useStyles = makeStyles({
  cite: {
    border: "none",
    padding: "0 2px",
    margin: 0,
    background: "none",
    font: "inherit",
    fontSize: "0.85em",
    verticalAlign: "super",
    lineHeight: 1,
    cursor: "pointer",
    color: tokens.colorBrandForegroundLink,
    ":hover": { textDecoration: "underline" },
    ":focus-visible": { outline: `2px solid ${tokens.colorStrokeFocus2}`, borderRadius: tokens.borderRadiusSmall },
  },
});

export function jumpToSource(n: number): void {
  const target = document.getElementById(`source-${n}`);
  if (!target) return;
  target.scrollIntoView({ behavior: "smooth", block: "nearest" });
  target.focus({ preventScroll: true });
}

/** `sources`: the numbers the server's `sources` event listed; a marker that names none stays plain text. */
export function AnswerText({ text, sources }: { text: string; sources?: ReadonlySet<number> }) {
  const styles = useStyles();
  return (
    <>
      {citationParts(text).map((part, i) =>
        "text" in part ? (
          <Fragment key={i}>{part.text}</Fragment>
        ) : !sources?.has(part.cite[0]) ? (
          <Fragment key={i}>{part.label}</Fragment>
        ) : (
          <button key={i} type="button" className={styles.cite} onClick={() => jumpToSource(part.cite[0])}
            aria-label={`Source ${part.cite.join(", ")}`}>
            {part.label}
          </button>
        ),
      )}
    </>
  );
}
