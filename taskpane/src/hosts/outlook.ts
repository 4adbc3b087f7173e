/**
 * Outlook glue: read the open message (and its Graph id), open a reply form, insert a draft, apply a
 * category, and say who the signed-in user is.
 */
import { splitThread } from "../shared/thread";
import { formatAddress, textToHtml } from "../shared/text";
import { officeCall, supports } from "./office";
import { HostError, type MailItem, type OfficeUser, type OutlookHost } from "./types";

/** The server budgets the model's context anyway; this only keeps a huge message from a 1 MB request. */
const MAX_BODY_CHARS = 200_000;

type Item = Office.MessageRead & Office.MessageCompose;

function currentItem(): Item {
  const item = Office.context.mailbox?.item as Item | null | undefined;
  if (!item) throw new HostError("Select a message first.");
  return item;
}

function isRead(item: Item): boolean {
  return typeof (item as unknown as Office.MessageRead).subject === "string";
}

function bodyText(item: Item): Promise<string> {
  return officeCall<string>((cb) => item.body.getAsync(Office.CoercionType.Text, cb));
}

/**
 * Office.js gives item ids in EWS format; Microsoft Graph (and the server's workflows) take the REST
 * format. convertToRestId (Mailbox 1.3) converts; without it the id is left out rather than sent wrong.
 */
function restId(itemId: string | undefined): string | null {
  if (!itemId || !supports("Mailbox", "1.3")) return null;
  try {
    return Office.context.mailbox.convertToRestId(itemId, Office.MailboxEnums.RestVersion.v2_0) || null;
  } catch {
    return null;
  }
}

function fromDetails(list: Office.EmailAddressDetails[] | undefined): string[] {
  return (list ?? []).map((r) => formatAddress(r.displayName, r.emailAddress)).filter(Boolean);
}

async function readItem(): Promise<MailItem> {
  const item = currentItem();
  let subject: string, from: string, to: string[], cc: string[], date: string | null;
  let senderAddress: string | null = null;
  let messageId: string | null = null;
  if (isRead(item)) {
    const read = item as unknown as Office.MessageRead;
    subject = read.subject ?? "";
    from = formatAddress(read.from?.displayName, read.from?.emailAddress);
    senderAddress = read.from?.emailAddress?.trim() || null;
    messageId = restId(read.itemId);
    to = fromDetails(read.to);
    cc = fromDetails(read.cc);
    date = read.dateTimeCreated ? new Date(read.dateTimeCreated).toLocaleString() : null;
  } else {
    const compose = item as unknown as Office.MessageCompose;
    const me = Office.context.mailbox.userProfile;
    [subject, to, cc] = await Promise.all([
      officeCall<string>((cb) => compose.subject.getAsync(cb)),
      officeCall<Office.EmailAddressDetails[]>((cb) => compose.to.getAsync(cb)).then(fromDetails),
      officeCall<Office.EmailAddressDetails[]>((cb) => compose.cc.getAsync(cb)).then(fromDetails),
    ]);
    from = formatAddress(me?.displayName, me?.emailAddress);
    date = null;
  }
  const body = (await bodyText(item)).slice(0, MAX_BODY_CHARS);
  const { latest, earlier } = splitThread(body);
  const ref = (item as unknown as Office.MessageRead).itemId || item.conversationId || null;
  return {
    email: { subject: subject.slice(0, 1000), from, to, cc, date, body: latest },
    earlier,
    sourceRef: ref,
    conversationId: item.conversationId || null,
    messageId,
    senderAddress,
  };
}

/** The mailbox's user (Mailbox 1.1 `userProfile`): what Office gives, trimmed; null when it gives neither. */
function signedInUser(): OfficeUser | null {
  const profile = Office.context.mailbox?.userProfile;
  const displayName = typeof profile?.displayName === "string" ? profile.displayName.trim() : "";
  const emailAddress = typeof profile?.emailAddress === "string" ? profile.emailAddress.trim() : "";
  return displayName || emailAddress ? { displayName, emailAddress } : null;
}

export function createOutlookHost(): OutlookHost {
  return {
    kind: "outlook",
    get mode() {
      const item = Office.context.mailbox?.item as Item | null | undefined;
      return item && !isRead(item) ? "compose" : "read";
    },
    canCategorize: supports("Mailbox", "1.8"),
    user: signedInUser(),
    readItem,
    openReply(text: string, replyAll = false) {
      const read = currentItem() as unknown as Office.MessageRead;
      // displayReplyForm takes HTML (up to 32 KB), so the text is escaped and its line breaks kept.
      const html = textToHtml(text.slice(0, 16_000));
      if (replyAll) read.displayReplyAllForm(html);
      else read.displayReplyForm(html);
    },
    async insertIntoDraft(text: string) {
      const compose = currentItem() as unknown as Office.MessageCompose;
      await officeCall<void>((cb) => compose.body.setSelectedDataAsync(text, { coercionType: Office.CoercionType.Text }, cb));
    },
    async setSubject(subject: string) {
      const compose = currentItem() as unknown as Office.MessageCompose;
      await officeCall<void>((cb) => compose.subject.setAsync(subject, cb));
    },
    async addCategory(label: string) {
      if (!supports("Mailbox", "1.8")) throw new HostError("This version of Outlook cannot set categories from add-ins.");
      const target = currentItem() as unknown as Office.MessageRead;
      await officeCall<void>((cb) => target.categories.addAsync([label], cb));
    },
    onItemChanged(listener: () => void) {
      if (!supports("Mailbox", "1.5")) return () => undefined;
      Office.context.mailbox.addHandlerAsync(Office.EventType.ItemChanged, listener);
      return () => Office.context.mailbox.removeHandlerAsync(Office.EventType.ItemChanged);
    },
  };
}
