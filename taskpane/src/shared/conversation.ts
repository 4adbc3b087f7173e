/**
 * The whole thread of a message. Outlook gives the pane only the open message, so by default the thread
 * is the history quoted under it (thread.ts). When the server is signed in to Microsoft 365 it can return
 * every message of the conversation (GET /v1/mail/conversation/{id}); then that is the thread, with the
 * newest message as the one summarized. Any failure (not signed in: 409, unknown: 404, Graph down: 502)
 * falls back to the quoted history: a thread summary never fails for lack of the connector.
 */
import type { Api } from "../api/http";
import type { EmailIn } from "../api/types";

/** The server takes up to 1 MB of JSON; it cuts the text to the model's context anyway. */
const MAX_MESSAGES = 30;
const MAX_BODY_CHARS = 20_000;

export interface Thread {
  email: EmailIn;
  thread: EmailIn[];
  source: "microsoft365" | "quoted";
}

export async function conversationThread(api: Api, conversationId: string, signal?: AbortSignal): Promise<Thread | null> {
  try {
    const out = await api.get<{ messages?: EmailIn[] }>(`/v1/mail/conversation/${encodeURIComponent(conversationId)}`, signal);
    const messages = (out.messages ?? []).slice(-MAX_MESSAGES).map((m) => ({ ...m, body: m.body.slice(0, MAX_BODY_CHARS) }));
    if (messages.length < 2) return null; // nothing more than the open message: the quoted history may know more
    const newest = messages[messages.length - 1];
    return { email: newest, thread: messages.slice(0, -1).reverse(), source: "microsoft365" };
  } catch {
    return null;
  }
}
