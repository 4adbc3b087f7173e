/**
 * A checked summary or answer, sentence by sentence (the `grounded` event): the model's own supported
 * words as plain text, a quote of the source set apart (left border, italic, a "quoted" marker), a note of
 * what was removed. Every sentence is a button: a click or Enter opens its source sentence beneath it, so
 * a reader can see what backs a claim before trusting it. Citation markers of an answer stay clickable.
 */
import { useState } from "react";
import { Caption1, makeStyles, mergeClasses, tokens } from "@fluentui/react-components";
import { InfoRegular, WarningRegular } from "@fluentui/react-icons";
import type { GroundedEvent } from "../api/types";
import { groundedView, type GroundedLine } from "../shared/grounded";
import { AnswerText } from "./AnswerText";

const useStyles = makeStyles({
  list: { display: "flex", flexDirection: "column", gap: tokens.spacingVerticalXS },
  sentence: {
    display: "block",
    width: "100%",
    boxSizing: "border-box",
    textAlign: "start",
    padding: `2px ${tokens.spacingHorizontalXS}`,
    margin: 0,
    border: "none",
    borderRadius: tokens.borderRadiusSmall,
    background: "none",
    font: "inherit",
    color: tokens.colorNeutralForeground1,
    cursor: "pointer",
    whiteSpace: "pre-wrap",
    overflowWrap: "anywhere",
    ":hover": { backgroundColor: tokens.colorNeutralBackground1Hover },
    ":focus-visible": { outline: `2px solid ${tokens.colorStrokeFocus2}` },
  },
  quoted: {
    fontStyle: "italic",
    borderLeft: `3px solid ${tokens.colorBrandStroke2}`,
    borderRadius: 0,
    paddingLeft: tokens.spacingHorizontalS,
    color: tokens.colorNeutralForeground2,
  },
  marker: {
    marginLeft: tokens.spacingHorizontalXS,
    padding: "0 4px",
    borderRadius: tokens.borderRadiusSmall,
    fontStyle: "normal",
    fontSize: tokens.fontSizeBase100,
    color: tokens.colorBrandForeground2,
    backgroundColor: tokens.colorBrandBackground2,
    verticalAlign: "middle",
  },
  source: {
    margin: `0 0 ${tokens.spacingVerticalXS} ${tokens.spacingHorizontalS}`,
    padding: `${tokens.spacingVerticalXS} ${tokens.spacingHorizontalS}`,
    borderRadius: tokens.borderRadiusMedium,
    backgroundColor: tokens.colorNeutralBackground3,
    color: tokens.colorNeutralForeground2,
    fontSize: tokens.fontSizeBase200,
    overflowWrap: "anywhere",
  },
  note: { display: "flex", alignItems: "flex-start", gap: tokens.spacingHorizontalXS, color: tokens.colorNeutralForeground3 },
  warn: { color: tokens.colorPaletteDarkOrangeForeground1 },
  icon: { flexShrink: 0, fontSize: "14px", marginTop: "1px" },
});

function Sentence({ line, index, sources }: { line: GroundedLine; index: number; sources?: ReadonlySet<number> }) {
  const styles = useStyles();
  const [open, setOpen] = useState(false);
  const sourceId = `grounded-source-${index}`;
  return (
    <>
      {/* A div with button semantics, not a <button>: an answer's citation markers inside are buttons too. */}
      <div role="button" tabIndex={0} className={mergeClasses(styles.sentence, line.quoted && styles.quoted)}
        data-testid="grounded-sentence" data-kind={line.quoted ? "quoted" : "generated"}
        aria-expanded={open} aria-controls={open ? sourceId : undefined}
        title={line.source ? "Show the source sentence" : undefined}
        onClick={(e) => { if (!(e.target as HTMLElement).closest("button")) setOpen(!open); }}
        onKeyDown={(e) => {
          if (e.target !== e.currentTarget || (e.key !== "Enter" && e.key !== " ")) return;
          e.preventDefault();
          setOpen(!open);
        }}>
        <AnswerText text={line.cite === null ? line.text : `${line.text} [${line.cite}]`} sources={sources} />
        {line.quoted && <span className={styles.marker} data-testid="quoted-marker">quoted</span>}
      </div>
      {open && (
        <Caption1 as="p" id={sourceId} className={styles.source} data-testid="grounded-source">
          {line.source ? <>From {line.where}: “{line.source}”</> : "No source sentence was named for this one."}
        </Caption1>
      )}
    </>
  );
}

export function GroundedText({ event, sources }: { event: GroundedEvent; sources?: ReadonlySet<number> }) {
  const styles = useStyles();
  const view = groundedView(event);
  return (
    <div className={styles.list} data-testid="grounded">
      {view.fallback && (
        <Caption1 className={mergeClasses(styles.note, styles.warn)} data-testid="grounded-fallback">
          <WarningRegular className={styles.icon} aria-hidden />{view.fallback}
        </Caption1>
      )}
      {view.lines.map((line, i) => <Sentence key={i} line={line} index={i} sources={sources} />)}
      {view.removed && (
        <Caption1 className={styles.note} data-testid="grounded-removed">
          <InfoRegular className={styles.icon} aria-hidden />{view.removed}
        </Caption1>
      )}
    </div>
  );
}
