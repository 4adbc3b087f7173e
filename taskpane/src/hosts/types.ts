/**
 * What the pane needs from its Office host, as two small interfaces. outlook.ts and word.ts implement
 * them over Office.js and nothing else (the glue stays thin, and testable with a mock); every decision
 * about what to send and how to show it lives in shared/ and ui/. Tests swap the Office globals for office-addin-mock.
 */
import type { EmailIn } from "../api/types";

/** A failure the user can fix in Office (no message selected, nothing selected in the document, ...). */
export class HostError extends Error {
  override readonly name = "HostError";
}

export interface MailItem {
  /** The newest message, its quoted history removed. */
  email: EmailIn;
  /** Earlier messages of the conversation quoted below it, newest first. */
  earlier: EmailIn[];
  /** Outlook's item id (read mode) or conversation id: the lineage record's source reference. */
  sourceRef: string | null;
  /** The conversation, for fetching the whole thread from Microsoft 365 through the server. */
  conversationId: string | null;
  /** Read mode: the message's REST id, which is its Microsoft Graph id (workflows reply to it). */
  messageId: string | null;
  /** The sender's address alone, as the server's mail rules match it. */
  senderAddress: string | null;
}

/**
 * The signed-in user as Office gives them (Mailbox `userProfile`), each trimmed and empty where Office has
 * nothing. Which person the pane records for a decision is decided in shared/identity.ts.
 */
export interface OfficeUser {
  displayName: string;
  emailAddress: string;
}

export interface OutlookHost {
  readonly kind: "outlook";
  /** "read": a received message; "compose": a message being written (drafts insert at the cursor). */
  readonly mode: "read" | "compose";
  /** Mailbox 1.8: categories on the item (apply the triage label). */
  readonly canCategorize: boolean;
  /** The signed-in user (name and email address), who approves, reviews and changes policies; null if unknown. */
  readonly user: OfficeUser | null;
  readItem(): Promise<MailItem>;
  /** Read mode: open Outlook's reply (or reply-all) form with `text` as its body. */
  openReply(text: string, replyAll?: boolean): void;
  /** Compose mode: insert `text` at the cursor in the message being written. */
  insertIntoDraft(text: string): Promise<void>;
  /** Compose mode: set the subject of the message being written. */
  setSubject(subject: string): Promise<void>;
  addCategory(label: string): Promise<void>;
  /** Called when the user selects another message while the pane stays open (pinned); returns an unsubscribe. */
  onItemChanged(listener: () => void): () => void;
}

export interface WordHost {
  readonly kind: "word";
  /** WordApi 1.4: the rewrite can be inserted as a tracked change. */
  readonly canTrackChanges: boolean;
  readDocument(): Promise<string>;
  readSelection(): Promise<string>;
  /** Replace the selection with `text`; tracked (trackAll) where supported, the user's mode restored after. */
  rewriteSelection(text: string): Promise<{ tracked: boolean }>;
  /** The document's name or URL, for lineage (empty for an unsaved document). */
  documentRef(): string | null;
  onSelectionChanged(listener: () => void): () => void;
}

/** Outside Office (the page opened in a browser): the pane still shows status, settings and a text box. */
export interface NoHost {
  readonly kind: "none";
}

export type Host = OutlookHost | WordHost | NoHost;
