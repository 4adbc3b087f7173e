import { describe, expect, it } from "vitest";
import type { ScopeOut } from "../../src/api/types";
import { reasonText, relativeTime, scopeKind, scopeLine, scopeTag, skippedLine, sortedScopes } from "../../src/shared/sync";

const NOW = new Date("2026-12-07T12:00:00Z");
const at = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000).toISOString();

const scope = (extra: Partial<ScopeOut> = {}): ScopeOut => ({
  scope: "drive", name: "OneDrive", state: "current", fullRound: false, updatedAt: null, succeededAt: at(-5),
  deferredUntil: null, deferredReason: null, skippedCount: 0, skipped: [], ...extra,
});

describe("sync status in words", () => {
  it("says how long ago, and how long ahead", () => {
    expect(relativeTime(at(-0.2), NOW)).toBe("just now");
    expect(relativeTime(at(-5), NOW)).toBe("5 min ago");
    expect(relativeTime(at(-180), NOW)).toBe("3 h ago");
    expect(relativeTime(at(-60 * 24), NOW)).toBe("1 day ago");
    expect(relativeTime(at(-60 * 24 * 3), NOW)).toBe("3 days ago");
    expect(relativeTime(at(12), NOW)).toBe("in 12 min");
  });

  it("gives the last success, or that it never synced", () => {
    expect(scopeLine(scope(), NOW)).toBe("synced 5 min ago");
    expect(scopeLine(scope({ succeededAt: null, state: "in_progress" }), NOW)).toBe("not synced yet");
    expect(scopeLine(scope({ state: "in_progress" }), NOW)).toBe("synced 5 min ago; a new round is under way");
  });

  it("gives the next try and its reason while a scope is deferred, and forgets it once it has passed", () => {
    const deferred = scope({ deferredUntil: at(30), deferredReason: "throttled: Retry-After 1800 s" });
    expect(scopeLine(deferred, NOW)).toMatch(/^synced 5 min ago; next try at .+ \(throttled: Retry-After 1800 s\)$/);
    expect(scopeLine({ ...deferred, deferredUntil: at(-1) }, NOW)).toBe("synced 5 min ago");
  });

  it("names a skipped file with its reason and next retry", () => {
    expect(skippedLine({ name: "a.pdf", reason: "malwareDetected", retryAt: at(15), attempts: 1 }, NOW))
      .toMatch(/^a\.pdf: flagged as malware by Microsoft 365, next retry at .+$/);
    expect(skippedLine({ name: "b.png", reason: "unsupported", retryAt: null, attempts: 0 }, NOW))
      .toBe("b.png: file type not supported");
    expect(reasonText("somethingNew")).toBe("somethingNew");
  });

  it("orders mail, OneDrive, SharePoint libraries, then the calendar", () => {
    const scopes = [
      scope({ scope: "calendar", name: "Calendar" }),
      scope({ scope: "drive:b!2", name: "Marketing / Documents" }),
      scope({ scope: "drive", name: "OneDrive" }),
      scope({ scope: "mail:2", name: "Inbox" }),
      scope({ scope: "drive:b!1", name: "Finance / Documents" }),
    ];
    expect(sortedScopes(scopes).map((s) => s.name)).toEqual([
      "Inbox", "OneDrive", "Finance / Documents", "Marketing / Documents", "Calendar",
    ]);
    expect(scopes.map(scopeTag)).toEqual([null, "SharePoint", null, "mail", "SharePoint"]);
    expect(scopes.map((s) => scopeKind(s.scope))).toEqual(["calendar", "SharePoint", "OneDrive", "mail", "SharePoint"]);
  });
});
