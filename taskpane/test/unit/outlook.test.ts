// The Outlook glue against office-addin-mock: what it reads from the item and what it
// asks Outlook to do. Office is a global in Office.js, so each test installs a fresh mock as the global.
import { OfficeMockObject } from "office-addin-mock";
import { afterEach, describe, expect, it } from "vitest";
import { createOutlookHost } from "../../src/hosts/outlook";
import { HostError } from "../../src/hosts/types";

const BODY = [
  "Hi Bob,",
  "",
  "Can you send the Q3 figures by Tuesday?",
  "",
  "Carol",
  "",
  "________________________________",
  "From: Bob Lee <bob@example.com>",
  "Sent: Monday, November 16, 2026 4:02 PM",
  "To: Carol Diaz <carol@example.com>",
  "Subject: RE: Q3",
  "",
  "They will be ready next week.",
].join("\r\n");

interface Recorded {
  calls: [string, ...unknown[]][];
}

function install(
  item: Record<string, unknown> | null,
  sets: Record<string, string> = { Mailbox: "1.3" },
  userProfile: Record<string, unknown> | null = { displayName: "Bob Lee", emailAddress: "bob@example.com" },
): Recorded {
  const recorded: Recorded = { calls: [] };
  const atLeast = (have: string | undefined, want: string) =>
    have !== undefined && have.split(".").map(Number)[1] >= want.split(".").map(Number)[1];
  const data = {
    host: "outlook",
    CoercionType: { Text: "text", Html: "html" },
    MailboxEnums: { RestVersion: { v1_0: "v1.0", v2_0: "v2.0" } },
    AsyncResultStatus: { Succeeded: "succeeded", Failed: "failed" },
    EventType: { ItemChanged: "olkItemSelectedChanged" },
    context: {
      requirements: { isSetSupported: (name: string, version: string) => atLeast(sets[name], version) },
      mailbox: {
        ...(userProfile ? { userProfile } : {}),
        addHandlerAsync: (type: string) => recorded.calls.push(["addHandlerAsync", type]),
        removeHandlerAsync: (type: string) => recorded.calls.push(["removeHandlerAsync", type]),
        // EWS to REST: "/" and "+" become "-" and "_" (what Exchange does for these ids).
        convertToRestId: (id: string, version: string) => {
          recorded.calls.push(["convertToRestId", id, version]);
          return id.replace(/\//g, "-").replace(/\+/g, "_");
        },
        ...(item ? { item } : {}),
      },
    },
  };
  (globalThis as { Office?: unknown }).Office = new OfficeMockObject(data);
  return recorded;
}

const succeeded = (value?: unknown) => ({ status: "succeeded", value });

function readItem(recorded: () => Recorded, body = BODY) {
  return {
    itemId: "AAMk-1",
    conversationId: "AAQk-1",
    subject: "Q3 numbers",
    from: { displayName: "Carol Diaz", emailAddress: "carol@example.com" },
    to: [{ displayName: "Bob Lee", emailAddress: "bob@example.com" }],
    cc: [{ displayName: "", emailAddress: "finance@example.com" }],
    dateTimeCreated: new Date("2026-11-20T09:12:00Z"),
    body: {
      getAsync: (coercion: string, callback: (r: unknown) => void) => {
        recorded().calls.push(["body.getAsync", coercion]);
        callback(succeeded(body));
      },
    },
    displayReplyForm: (html: string) => recorded().calls.push(["displayReplyForm", html]),
    displayReplyAllForm: (html: string) => recorded().calls.push(["displayReplyAllForm", html]),
    categories: { addAsync: (labels: string[], cb: (r: unknown) => void) => { recorded().calls.push(["categories.addAsync", labels]); cb(succeeded()); } },
  };
}

afterEach(() => {
  delete (globalThis as { Office?: unknown }).Office;
});

describe("Outlook glue, read mode", () => {
  it("reads the message as text and splits off the quoted history", async () => {
    let rec: Recorded = { calls: [] };
    rec = install(readItem(() => rec));
    const host = createOutlookHost();
    expect(host.mode).toBe("read");
    const item = await host.readItem();
    expect(rec.calls).toContainEqual(["body.getAsync", "text"]);
    expect(item.email).toMatchObject({
      subject: "Q3 numbers",
      from: "Carol Diaz <carol@example.com>",
      to: ["Bob Lee <bob@example.com>"],
      cc: ["finance@example.com"],
      body: "Hi Bob,\n\nCan you send the Q3 figures by Tuesday?\n\nCarol",
    });
    expect(item.earlier).toEqual([
      expect.objectContaining({ from: "Bob Lee <bob@example.com>", subject: "RE: Q3", body: "They will be ready next week." }),
    ]);
    expect(item.sourceRef).toBe("AAMk-1");
  });

  it("gives the message's Graph id (converted from Office's EWS id), the sender's address and the user", async () => {
    let rec: Recorded = { calls: [] };
    rec = install({ ...readItem(() => rec), itemId: "AAMkAGI2/ab+c=" });
    const host = createOutlookHost();
    expect(host.user).toEqual({ displayName: "Bob Lee", emailAddress: "bob@example.com" });
    const item = await host.readItem();
    expect(rec.calls).toContainEqual(["convertToRestId", "AAMkAGI2/ab+c=", "v2.0"]);
    expect(item.messageId).toBe("AAMkAGI2-ab_c=");
    expect(item.senderAddress).toBe("carol@example.com");
    expect(item.sourceRef).toBe("AAMkAGI2/ab+c="); // lineage keeps the id Office gave
  });

  it("leaves the Graph id out where Mailbox 1.3 (convertToRestId) is missing, rather than send an EWS id", async () => {
    let rec: Recorded = { calls: [] };
    rec = install(readItem(() => rec), { Mailbox: "1.1" });
    const item = await createOutlookHost().readItem();
    expect(item.messageId).toBeNull();
    expect(rec.calls.filter(([name]) => name === "convertToRestId")).toEqual([]);
  });

  it("opens the reply form with the draft as escaped HTML, or reply-all", () => {
    let rec: Recorded = { calls: [] };
    rec = install(readItem(() => rec));
    const host = createOutlookHost();
    host.openReply("Dear Carol,\n\nYes <b>by</b> Tuesday & Wednesday.\nBob");
    host.openReply("Thanks all", true);
    expect(rec.calls).toContainEqual(["displayReplyForm", "<p>Dear Carol,</p><p>Yes &lt;b&gt;by&lt;/b&gt; Tuesday &amp; Wednesday.<br>Bob</p>"]);
    expect(rec.calls).toContainEqual(["displayReplyAllForm", "<p>Thanks all</p>"]);
  });

  it("applies a category only where Mailbox 1.8 allows it", async () => {
    let rec: Recorded = { calls: [] };
    rec = install(readItem(() => rec), { Mailbox: "1.3" });
    const old = createOutlookHost();
    expect(old.canCategorize).toBe(false);
    await expect(old.addCategory("Invoice")).rejects.toBeInstanceOf(HostError);
    expect(rec.calls.filter(([name]) => name === "categories.addAsync")).toEqual([]);

    rec = install(readItem(() => rec), { Mailbox: "1.8" });
    const current = createOutlookHost();
    expect(current.canCategorize).toBe(true);
    await current.addCategory("Invoice");
    expect(rec.calls).toContainEqual(["categories.addAsync", ["Invoice"]]);
  });

  it("listens for another message being selected only where Mailbox 1.5 has the event", () => {
    let rec: Recorded = { calls: [] };
    rec = install(readItem(() => rec), { Mailbox: "1.3" });
    createOutlookHost().onItemChanged(() => undefined)();
    expect(rec.calls).toEqual([]);
    rec = install(readItem(() => rec), { Mailbox: "1.5" });
    createOutlookHost().onItemChanged(() => undefined)();
    expect(rec.calls).toEqual([["addHandlerAsync", "olkItemSelectedChanged"], ["removeHandlerAsync", "olkItemSelectedChanged"]]);
  });

  it("passes Office's error on when the body cannot be read", async () => {
    const item = {
      subject: "x",
      body: { getAsync: (_c: string, cb: (r: unknown) => void) => cb({ status: "failed", error: { message: "Item is not available" } }) },
    };
    install(item);
    await expect(createOutlookHost().readItem()).rejects.toThrow("Item is not available");
  });

  it("asks the user to select a message when there is none (a pinned pane on a folder)", async () => {
    install(null);
    const host = createOutlookHost();
    await expect(host.readItem()).rejects.toBeInstanceOf(HostError);
    await expect(host.readItem()).rejects.toThrow("Select a message first.");
  });
});

describe("Outlook glue, the signed-in user", () => {
  it("gives Office's display name and address as they are, trimmed, and null when Office has neither", () => {
    install(null, { Mailbox: "1.3" }, { displayName: "  Bob Lee ", emailAddress: " bob@example.com " });
    expect(createOutlookHost().user).toEqual({ displayName: "Bob Lee", emailAddress: "bob@example.com" });
    install(null, { Mailbox: "1.3" }, { displayName: "", emailAddress: "bob@example.com" });
    expect(createOutlookHost().user).toEqual({ displayName: "", emailAddress: "bob@example.com" });
    install(null, { Mailbox: "1.3" }, { displayName: " ", emailAddress: "" });
    expect(createOutlookHost().user).toBeNull();
    install(null, { Mailbox: "1.3" }, null);
    expect(createOutlookHost().user).toBeNull();
  });
});

describe("Outlook glue, compose mode", () => {
  it("reads subject and recipients asynchronously, uses the user as sender and inserts at the cursor", async () => {
    const rec: Recorded = install({
      subject: {
        getAsync: (cb: (r: unknown) => void) => cb(succeeded("Re: Q3")),
        setAsync: (subject: string, cb: (r: unknown) => void) => {
          rec.calls.push(["subject.setAsync", subject]);
          cb(succeeded());
        },
      },
      to: { getAsync: (cb: (r: unknown) => void) => cb(succeeded([{ displayName: "Carol Diaz", emailAddress: "carol@example.com" }])) },
      cc: { getAsync: (cb: (r: unknown) => void) => cb(succeeded([])) },
      conversationId: "AAQk-2",
      body: {
        getAsync: (_c: string, cb: (r: unknown) => void) => cb(succeeded("Draft so far\n\nOn Mon, 16 Nov 2026 at 09:12, Carol Diaz <carol@example.com> wrote:\n> Numbers please.")),
        setSelectedDataAsync: (text: string, options: { coercionType: string }, cb: (r: unknown) => void) => {
          rec.calls.push(["setSelectedDataAsync", text, options.coercionType]);
          cb(succeeded());
        },
      },
    });
    const host = createOutlookHost();
    expect(host.mode).toBe("compose");
    const item = await host.readItem();
    expect(item.email).toMatchObject({ subject: "Re: Q3", from: "Bob Lee <bob@example.com>", to: ["Carol Diaz <carol@example.com>"], body: "Draft so far" });
    expect(item.earlier).toEqual([expect.objectContaining({ from: "Carol Diaz <carol@example.com>", body: "Numbers please." })]);
    expect(item.sourceRef).toBe("AAQk-2");
    expect(item.messageId).toBeNull(); // a draft has no id until Outlook saves it
    expect(item.senderAddress).toBeNull();
    await host.insertIntoDraft("Thanks, Carol.");
    expect(rec.calls).toContainEqual(["setSelectedDataAsync", "Thanks, Carol.", "text"]);
    await host.setSubject("Q3 figures due Tuesday");
    expect(rec.calls).toContainEqual(["subject.setAsync", "Q3 figures due Tuesday"]);
  });
});
