/** Small text helpers shared by the hosts and the UI. */

/** `Name <address>`, or whichever of the two is known. */
export function formatAddress(name?: string | null, address?: string | null): string {
  const n = (name ?? "").trim();
  const a = (address ?? "").trim();
  if (n && a && n.toLowerCase() !== a.toLowerCase()) return `${n} <${a}>`;
  return a || n;
}

/** Plain text as HTML for Outlook's reply form: escaped, paragraphs and line breaks kept. */
export function textToHtml(text: string): string {
  const escaped = text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
  return escaped
    .trim()
    .split(/\n{2,}/)
    .map((p) => `<p>${p.replace(/\n/g, "<br>")}</p>`)
    .join("");
}

/** Split an answer into text and citation markers like [1] or [2, 3], for clickable citations. */
export type AnswerPart = { text: string } | { cite: number[]; label: string };

export function citationParts(answer: string): AnswerPart[] {
  const parts: AnswerPart[] = [];
  const pattern = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;
  let last = 0;
  for (let m = pattern.exec(answer); m; m = pattern.exec(answer)) {
    if (m.index > last) parts.push({ text: answer.slice(last, m.index) });
    parts.push({ cite: m[1].split(/\s*[,;]\s*/).map(Number), label: m[0] });
    last = m.index + m[0].length;
  }
  if (last < answer.length) parts.push({ text: answer.slice(last) });
  return parts;
}
