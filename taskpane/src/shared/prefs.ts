/** The user's settings for the pane, kept in the pane's own localStorage (nothing leaves the machine). */
import type { ReplyLength, Tone } from "../api/types";
import { ADDRESS_MAX, NAME_MAX } from "./identity";
import type { ThemeChoice } from "./theme";

export interface Prefs {
  sentences: number;
  tone: Tone;
  length: ReplyLength;
  signature: string;
  /**
   * Who the user is, where Office does not say (Word): recorded with approvals, review decisions and
   * policy changes (shared/identity.ts). In Outlook these are filled in from the mailbox's user.
   */
  name: string;
  address: string;
  /** Warm the model for the open item (POST /v1/prepare) so Summarize starts at once. */
  warmUp: boolean;
  theme: ThemeChoice;
}

export const TONES: readonly Tone[] = ["neutral", "friendly", "formal", "direct", "apologetic"];
export const LENGTHS: readonly ReplyLength[] = ["short", "medium", "long"];
export const THEMES: readonly ThemeChoice[] = ["office", "light", "dark"];

export const DEFAULT_PREFS: Prefs = {
  sentences: 3,
  tone: "neutral",
  length: "medium",
  signature: "",
  name: "",
  address: "",
  warmUp: true,
  theme: "office",
};

const KEY = "deskpilot.prefs.v1";

/** Stored values are checked one by one: a bad or old value falls back to its default, not the lot. */
export function parsePrefs(raw: string | null): Prefs {
  let stored: Record<string, unknown> = {};
  try {
    const parsed: unknown = raw ? JSON.parse(raw) : {};
    if (parsed && typeof parsed === "object") stored = parsed as Record<string, unknown>;
  } catch {
    // corrupt: defaults
  }
  const pick = <T>(value: unknown, ok: (v: unknown) => boolean, fallback: T): T => (ok(value) ? (value as T) : fallback);
  return {
    sentences: pick(stored.sentences, (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 10, DEFAULT_PREFS.sentences),
    tone: pick(stored.tone, (v) => TONES.includes(v as Tone), DEFAULT_PREFS.tone),
    length: pick(stored.length, (v) => LENGTHS.includes(v as ReplyLength), DEFAULT_PREFS.length),
    signature: pick(stored.signature, (v) => typeof v === "string" && v.length <= 200, DEFAULT_PREFS.signature),
    // Before the address, the name was `reviewer`: a name entered then is kept.
    name: pick(stored.name ?? stored.reviewer, (v) => typeof v === "string" && v.length <= NAME_MAX, DEFAULT_PREFS.name),
    address: pick(stored.address, (v) => typeof v === "string" && v.length <= ADDRESS_MAX, DEFAULT_PREFS.address),
    warmUp: pick(stored.warmUp, (v) => typeof v === "boolean", DEFAULT_PREFS.warmUp),
    theme: pick(stored.theme, (v) => THEMES.includes(v as ThemeChoice), DEFAULT_PREFS.theme),
  };
}

export function loadPrefs(storage: Pick<Storage, "getItem"> | undefined = globalThis.localStorage): Prefs {
  try {
    return parsePrefs(storage?.getItem(KEY) ?? null);
  } catch {
    return DEFAULT_PREFS; // storage blocked
  }
}

export function savePrefs(prefs: Prefs, storage: Pick<Storage, "setItem"> | undefined = globalThis.localStorage): void {
  try {
    storage?.setItem(KEY, JSON.stringify(prefs));
  } catch {
    // storage blocked or full: settings last for this session only
  }
}
