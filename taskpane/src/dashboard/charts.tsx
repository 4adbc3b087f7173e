/**
 * Line and stacked-bar charts drawn as plain SVG: no chart library to ship or audit, and SVG prints
 * sharply in the auditor's report. Time runs left to right in UTC; the y axis starts at zero.
 */
import { makeStyles, tokens } from "@fluentui/react-components";
import type { Bucket, Point, Series } from "./data";
import { formatTime } from "./data";

const WIDTH = 640;
const HEIGHT = 220;
const MARGIN = { left: 64, right: 16, top: 12, bottom: 28 };
// Fluent's brand blue, red, green, purple, orange, teal, and two greys: distinct in print too.
export const PALETTE = ["#0f6cbd", "#c50f1f", "#107c10", "#8764b8", "#ca5010", "#038387", "#616161", "#986f0b"];

const useStyles = makeStyles({
  figure: { margin: 0 },
  svg: { width: "100%", height: "auto", display: "block", maxWidth: `${WIDTH}px` },
  legend: { display: "flex", flexWrap: "wrap", gap: "4px 16px", fontSize: tokens.fontSizeBase200, color: tokens.colorNeutralForeground2 },
  swatch: { display: "inline-block", width: "12px", height: "3px", marginRight: "6px", verticalAlign: "middle" },
  empty: { color: tokens.colorNeutralForeground3, fontSize: tokens.fontSizeBase300, padding: "24px 0" },
});

/** A round upper bound for the y axis: 1, 2 or 5 times a power of ten. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return ([1, 2, 5, 10].find((m) => m * power >= max) ?? 10) * power;
}

interface Scale {
  x: (t: number) => number;
  y: (v: number) => number;
  t0: number;
  t1: number;
  top: number;
}

function scale(points: Point[], yMax: number | undefined, stacked: number[] = []): Scale {
  const times = points.map((p) => p.t);
  let t0 = Math.min(...times);
  let t1 = Math.max(...times);
  if (t0 === t1) {
    t0 -= 3_600_000;
    t1 += 3_600_000;
  }
  const top = yMax ?? niceMax(Math.max(...points.map((p) => p.v), ...stacked));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  return {
    x: (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW,
    y: (v) => MARGIN.top + plotH - (Math.min(v, top) / top) * plotH,
    t0,
    t1,
    top,
  };
}

function Axes({ s, format, bucket }: { s: Scale; format: (v: number) => string; bucket: Bucket }) {
  // Fifths of a top of 1, 2 or 5 times a power of ten are round numbers too.
  const yTicks = [0, 0.2, 0.4, 0.6, 0.8, 1].map((f) => f * s.top);
  const xTicks = s.t0 === s.t1 ? [s.t0] : [0, 0.5, 1].map((f) => s.t0 + f * (s.t1 - s.t0));
  const bottom = HEIGHT - MARGIN.bottom;
  return (
    <g fontSize="11" fill="#616161">
      {yTicks.map((v) => (
        <g key={v}>
          <line x1={MARGIN.left} x2={WIDTH - MARGIN.right} y1={s.y(v)} y2={s.y(v)} stroke="#e0e0e0" />
          <text x={MARGIN.left - 6} y={s.y(v) + 4} textAnchor="end">
            {format(v)}
          </text>
        </g>
      ))}
      {xTicks.map((t, i) => (
        <text key={t} x={s.x(t)} y={bottom + 18} textAnchor={i === 0 ? "start" : i === xTicks.length - 1 ? "end" : "middle"}>
          {formatTime(t, bucket)}
        </text>
      ))}
      <line x1={MARGIN.left} x2={WIDTH - MARGIN.right} y1={bottom} y2={bottom} stroke="#8a8a8a" />
    </g>
  );
}

function Legend({ names }: { names: { name: string; dashed?: boolean }[] }) {
  const styles = useStyles();
  return (
    <figcaption className={styles.legend}>
      {names.map((s, i) => (
        <span key={s.name}>
          <span
            className={styles.swatch}
            style={{ background: s.dashed ? "transparent" : PALETTE[i % PALETTE.length], borderTop: s.dashed ? `2px dashed ${PALETTE[i % PALETTE.length]}` : undefined }}
          />
          {s.name}
        </span>
      ))}
    </figcaption>
  );
}

export interface ChartProps {
  title: string;
  series: Series[];
  format: (v: number) => string;
  bucket: Bucket;
  testId: string;
  /** A fixed top for the y axis (1 for rates); otherwise a round value above the largest. */
  yMax?: number;
}

export function LineChart({ title, series, format, bucket, testId, yMax }: ChartProps) {
  const styles = useStyles();
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return <p className={styles.empty} data-testid={`${testId}-empty`}>{title}: no data in this period.</p>;
  const s = scale(all, yMax);
  return (
    <figure className={styles.figure}>
      <svg className={styles.svg} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={title} data-testid={testId}>
        <Axes s={s} format={format} bucket={bucket} />
        {series.map((line, i) => {
          const color = PALETTE[i % PALETTE.length];
          const d = line.points.map((p, j) => `${j ? "L" : "M"}${s.x(p.t).toFixed(1)},${s.y(p.v).toFixed(1)}`).join(" ");
          return (
            <g key={line.name} data-series={line.name}>
              {line.points.length > 0 && <path d={d} fill="none" stroke={color} strokeWidth={2} strokeDasharray={line.dashed ? "6 4" : undefined} />}
              {line.points.map((p) => (
                <circle key={p.t} cx={s.x(p.t)} cy={s.y(p.v)} r={2.5} fill={color}>
                  <title>{`${line.name}, ${formatTime(p.t, bucket)}: ${format(p.v)}`}</title>
                </circle>
              ))}
            </g>
          );
        })}
      </svg>
      <Legend names={series} />
    </figure>
  );
}

/** Bars per time bucket, one stacked segment per series (e.g. cost per model profile). */
export function StackedBarChart({ title, series, format, bucket, testId }: ChartProps) {
  const styles = useStyles();
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return <p className={styles.empty} data-testid={`${testId}-empty`}>{title}: no data in this period.</p>;
  const times = [...new Set(all.map((p) => p.t))].sort((a, b) => a - b);
  const sums = times.map((t) => series.reduce((sum, line) => sum + (line.points.find((p) => p.t === t)?.v ?? 0), 0));
  // Room for half a bar at each end, so the first and last bars stay inside the plot.
  const half = times.length > 1 ? (times[times.length - 1] - times[0]) / (2 * (times.length - 1)) : 3_600_000;
  const s = scale([...all, { t: times[0] - half, v: 0 }, { t: times[times.length - 1] + half, v: 0 }], undefined, sums);
  const barWidth = Math.max(2, Math.min(40, ((s.x(times[0] + half) - s.x(times[0] - half)) * 0.7)));
  return (
    <figure className={styles.figure}>
      <svg className={styles.svg} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={title} data-testid={testId}>
        <Axes s={s} format={format} bucket={bucket} />
        {times.map((t) => {
          let base = 0;
          return (
            <g key={t}>
              {series.map((line, i) => {
                const v = line.points.find((p) => p.t === t)?.v ?? 0;
                if (v <= 0) return null;
                const y0 = s.y(base);
                base += v;
                const y1 = s.y(base);
                const x = s.x(t) - barWidth / 2;
                const d = `M${x.toFixed(1)},${y0.toFixed(1)} V${y1.toFixed(1)} H${(x + barWidth).toFixed(1)} V${y0.toFixed(1)} Z`;
                return (
                  <path key={line.name} d={d} fill={PALETTE[i % PALETTE.length]} data-series={line.name}>
                    <title>{`${line.name}, ${formatTime(t, bucket)}: ${format(v)}`}</title>
                  </path>
                );
              })}
            </g>
          );
        })}
      </svg>
      <Legend names={series} />
    </figure>
  );
}
