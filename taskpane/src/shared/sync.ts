/**
 * Microsoft 365 sync status in words, for the Status tab: per scope (a mail folder, OneDrive, a SharePoint
 * library, the calendar) when it last synced, whether it waits for a later try and why, and the files it
 * left out with their reason and next retry. Pure functions over GET /v1/sync/status, tested without a
 * browser.
 */
import type { ScopeOut, SkippedItemOut } from "../api/types";

/** What Graph or the index said about a file, as a person reads it; an unknown code shows as it is. */
const REASONS: Record<string, string> = {
  malwareDetected: "flagged as malware by Microsoft 365",
  http_400: "Microsoft 365 would not serve it",
  http_403: "access denied",
  accessDenied: "access denied",
  unsupported: "file type not supported",
  too_large: "too large",
  empty: "empty file",
  binary: "not a text document",
  corrupt: "damaged file",
  encrypted: "password protected",
  no_text: "no text in it (scanned?)",
  unreadable: "could not be read",
  gone: "deleted before it was fetched",
};

export function reasonText(reason: string): string {
  return REASONS[reason] ?? reason;
}

/** "just now", "5 min ago", "3 h ago", "2 days ago"; "in 12 min" for a time ahead. */
export function relativeTime(iso: string, now: Date): string {
  const seconds = Math.round((new Date(iso).getTime() - now.getTime()) / 1000);
  const ahead = seconds > 0;
  const span = Math.abs(seconds);
  if (span < 60) return ahead ? "in less than a minute" : "just now";
  const [value, unit] =
    span < 3600 ? [Math.round(span / 60), "min"]
      : span < 86400 ? [Math.round(span / 3600), "h"]
        : [Math.round(span / 86400), Math.round(span / 86400) === 1 ? "day" : "days"];
  return ahead ? `in ${value} ${unit}` : `${value} ${unit} ago`;
}

/** "14:05" today, "8 Dec 14:05" another day: when a retry or a deferred scope is due. */
export function clockTime(iso: string, now: Date): string {
  const at = new Date(iso);
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return at.toDateString() === now.toDateString()
    ? time
    : `${at.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}

/** The scope's kind in words, beside its name: mail folders are named by their path already. */
export function scopeKind(scope: string): string {
  if (scope.startsWith("mail:")) return "mail";
  if (scope === "drive") return "OneDrive";
  if (scope.startsWith("drive:")) return "SharePoint";
  if (scope === "calendar") return "calendar";
  return scope;
}

/** The kind to show beside the scope's name, or null when the name says it already ("OneDrive"). */
export function scopeTag(scope: ScopeOut): string | null {
  const kind = scopeKind(scope.scope);
  return kind.toLowerCase() === scope.name.toLowerCase() ? null : kind;
}

/** The scope's state in one line: syncing, waiting until a time (and why), or when it last succeeded. */
export function scopeLine(scope: ScopeOut, now: Date): string {
  const deferred = scope.deferredUntil && new Date(scope.deferredUntil) > now ? scope.deferredUntil : null;
  const last = scope.succeededAt ? `synced ${relativeTime(scope.succeededAt, now)}` : "not synced yet";
  if (deferred) {
    const why = scope.deferredReason ? ` (${scope.deferredReason})` : "";
    return `${last}; next try at ${clockTime(deferred, now)}${why}`;
  }
  return scope.state === "in_progress" && scope.succeededAt ? `${last}; a new round is under way` : last;
}

/** One skipped file: "report.pdf: flagged as malware by Microsoft 365, next retry at 14:05". */
export function skippedLine(item: SkippedItemOut, now: Date): string {
  const retry = item.retryAt ? `, next retry at ${clockTime(item.retryAt, now)}` : "";
  return `${item.name}: ${reasonText(item.reason)}${retry}`;
}

/** The scopes in the order a person looks for them: mail folders by name, OneDrive, SharePoint, calendar. */
export function sortedScopes(scopes: readonly ScopeOut[]): ScopeOut[] {
  const rank = (s: ScopeOut) => ["mail", "OneDrive", "SharePoint", "calendar"].indexOf(scopeKind(s.scope));
  return [...scopes].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}
