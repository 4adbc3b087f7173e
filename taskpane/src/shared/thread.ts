/**
 * Split an email's plain-text body into the newest message and the earlier messages quoted below it.
 *
 * Mailbox 1.3 gives the pane only the open item; earlier messages of a conversation are the history that
 * mail clients quote under a reply. We recognise the three forms that cover most mail:
 *  - Outlook: an optional rule ("____" or "-----Original Message-----") then a header block that starts
 *    with `From:` and has `Sent:` or `Date:` within the next lines (To/Cc/Subject optional);
 *  - Gmail, Apple Mail, Thunderbird: "On <date>, <name> wrote:" (possibly wrapped over two lines)
 *    followed by lines quoted with ">";
 *  - a bare block of ">" lines.
 * What is not recognised stays in the newest message, so nothing is ever lost, only less structured.
 */
import type { EmailIn } from "../api/types";

export interface SplitThread {
  /** The newest message's own text, without the quoted history. */
  latest: string;
  /** Earlier messages, newest first. */
  earlier: EmailIn[];
}

const MAX_EARLIER = 20;
const RULE = /^\s*(?:_{8,}|-{2,}\s*Original Message\s*-{2,}|-{5,}\s*Forwarded message\s*-{5,})\s*$/i;
const HEADER = /^\s*\*?(From|Sent|Date|To|Cc|Subject)\s*:\*?\s*(.*)$/i;
const WROTE = /^\s*On\s.+\swrote:\s*$/i;
const WROTE_START = /^\s*On\s.+$/i;
const WROTE_END = /^.*\swrote:\s*$/i;

interface Boundary {
  /** First line of the separator (a rule, a header block or an attribution line). */
  start: number;
  /** First line after the separator. */
  bodyStart: number;
  headers: Record<string, string>;
  quoted: boolean;
}

function headerBlock(lines: string[], at: number): { end: number; headers: Record<string, string> } | null {
  const first = HEADER.exec(lines[at] ?? "");
  if (!first || first[1].toLowerCase() !== "from") return null;
  const headers: Record<string, string> = {};
  let i = at;
  for (; i < lines.length && i < at + 8; i++) {
    const match = HEADER.exec(lines[i]);
    if (!match) break;
    headers[match[1].toLowerCase()] = match[2].trim();
  }
  return headers.sent !== undefined || headers.date !== undefined ? { end: i, headers } : null;
}

function attribution(lines: string[], at: number): { end: number; from: string; date: string } | null {
  let text: string | null = null;
  let end = at + 1;
  if (WROTE.test(lines[at])) text = lines[at].trim();
  else if (WROTE_START.test(lines[at]) && at + 1 < lines.length && WROTE_END.test(lines[at + 1])) {
    text = `${lines[at].trim()} ${lines[at + 1].trim()}`;
    end = at + 2;
  }
  if (text === null) return null;
  // "On Mon, 3 Mar 2025 at 09:12, Carol Diaz <carol@example.com> wrote:" — the sender follows the last
  // comma that precedes an address or a name; the rest is the date.
  const body = text.replace(/^On\s+/i, "").replace(/\s+wrote:\s*$/i, "");
  const split = body.search(/,\s*[^,]*(<[^>]+>|@)[^,]*$/);
  const [date, from] = split === -1 ? ["", body] : [body.slice(0, split), body.slice(split + 1)];
  return { end, from: from.trim(), date: date.trim() };
}

function findBoundary(lines: string[], from: number): Boundary | null {
  for (let i = from; i < lines.length; i++) {
    if (RULE.test(lines[i])) {
      let j = i + 1;
      while (j < lines.length && lines[j].trim() === "") j++;
      const block = headerBlock(lines, j);
      if (block) return { start: i, bodyStart: block.end, headers: block.headers, quoted: false };
      continue;
    }
    const block = headerBlock(lines, i);
    if (block) return { start: i, bodyStart: block.end, headers: block.headers, quoted: false };
    const said = attribution(lines, i);
    if (said) return { start: i, bodyStart: said.end, headers: { from: said.from, date: said.date }, quoted: true };
    if (/^\s*>/.test(lines[i]) && lines.slice(i).every((l) => /^\s*(>|$)/.test(l))) {
      return { start: i, bodyStart: i, headers: {}, quoted: true };
    }
  }
  return null;
}

function unquote(lines: string[]): string[] {
  return lines.map((l) => l.replace(/^\s*> ?/, ""));
}

function addresses(value: string | undefined): string[] {
  if (!value) return [];
  return value.split(/;\s*|,\s*(?=[^,]*(?:<|@))/).map((s) => s.trim()).filter(Boolean);
}

function clip(value: string, max: number): string {
  return value.length > max ? value.slice(0, max) : value;
}

function message(headers: Record<string, string>, body: string): EmailIn {
  return {
    from: clip(headers.from ?? "", 320),
    subject: clip(headers.subject ?? "", 1000),
    to: addresses(headers.to).map((a) => clip(a, 320)),
    cc: addresses(headers.cc).map((a) => clip(a, 320)),
    date: headers.sent ?? headers.date ?? null,
    body: body.trim(),
  };
}

export function splitThread(body: string): SplitThread {
  const lines = body.replace(/\r\n?/g, "\n").split("\n");
  const first = findBoundary(lines, 0);
  if (!first) return { latest: body.trim(), earlier: [] };
  const latest = lines.slice(0, first.start).join("\n").trim();
  const earlier: EmailIn[] = [];
  let boundary: Boundary | null = first;
  let rest = lines;
  while (boundary && earlier.length < MAX_EARLIER) {
    let after = rest.slice(boundary.bodyStart);
    if (boundary.quoted) {
      // The quoted block runs while lines start with ">" (blank lines inside it included).
      let end = 0;
      while (end < after.length && /^\s*(>|$)/.test(after[end])) end++;
      after = unquote(after.slice(0, end));
    }
    const next = findBoundary(after, 0);
    const own = next ? after.slice(0, next.start) : after;
    const text = own.join("\n").trim();
    if (text || Object.keys(boundary.headers).length) earlier.push(message(boundary.headers, text));
    boundary = next;
    rest = after;
  }
  return { latest: latest || body.trim(), earlier: earlier.filter((m) => m.body) };
}
