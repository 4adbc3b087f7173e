import { describe, expect, it } from "vitest";
import { Api } from "../../src/api/http";
import { conversationThread } from "../../src/shared/conversation";
import { DEFAULT_PREFS, parsePrefs } from "../../src/shared/prefs";
import { parseEdited, structured } from "../../src/shared/result";
import { addedRoots } from "../../src/shared/roots";
import { citationParts, formatAddress, textToHtml } from "../../src/shared/text";
import { isDarkColor, wantsDark } from "../../src/shared/theme";
import { splitThread } from "../../src/shared/thread";

describe("splitThread", () => {
  it("leaves a message without quoted history alone", () => {
    expect(splitThread("Lunch at 1?\n\nAna")).toEqual({ latest: "Lunch at 1?\n\nAna", earlier: [] });
  });

  it("splits Outlook's header blocks, newest first, with their headers", () => {
    const body = [
      "Sounds good.", "",
      "-----Original Message-----",
      "From: Carol Diaz <carol@example.com>",
      "Sent: Tuesday, November 17, 2026 8:00 AM",
      "To: Bob Lee <bob@example.com>; Dan <dan@example.com>",
      "Subject: RE: Q3", "",
      "Tuesday works.", "",
      "From: Bob Lee <bob@example.com>",
      "Date: Monday, November 16, 2026 4:02 PM",
      "Subject: Q3", "",
      "When can we meet?",
    ].join("\n");
    const { latest, earlier } = splitThread(body);
    expect(latest).toBe("Sounds good.");
    expect(earlier).toEqual([
      { from: "Carol Diaz <carol@example.com>", subject: "RE: Q3", to: ["Bob Lee <bob@example.com>", "Dan <dan@example.com>"], cc: [],
        date: "Tuesday, November 17, 2026 8:00 AM", body: "Tuesday works." },
      { from: "Bob Lee <bob@example.com>", subject: "Q3", to: [], cc: [], date: "Monday, November 16, 2026 4:02 PM", body: "When can we meet?" },
    ]);
  });

  it("splits nested '> ' quotes under 'On ... wrote:' lines, wrapped or not", () => {
    const body = [
      "Yes, Friday.", "",
      "On Tue, 17 Nov 2026 at 08:00, Carol Diaz",
      "<carol@example.com> wrote:",
      "> Friday then?",
      ">",
      "> On Mon, 16 Nov 2026, Bob Lee <bob@example.com> wrote:",
      ">> Can we move it?",
    ].join("\n");
    const { latest, earlier } = splitThread(body);
    expect(latest).toBe("Yes, Friday.");
    expect(earlier.map((m) => [m.from, m.date, m.body])).toEqual([
      ["Carol Diaz <carol@example.com>", "Tue, 17 Nov 2026 at 08:00", "Friday then?"],
      ["Bob Lee <bob@example.com>", "Mon, 16 Nov 2026", "Can we move it?"],
    ]);
  });

  it("does not mistake a 'From:' line in the text for a header block", () => {
    const body = "From: the finance team we need the totals.\nThanks";
    expect(splitThread(body).earlier).toEqual([]);
  });
});

describe("text helpers", () => {
  it("formats addresses", () => {
    expect(formatAddress("Carol", "carol@example.com")).toBe("Carol <carol@example.com>");
    expect(formatAddress("carol@example.com", "carol@example.com")).toBe("carol@example.com");
    expect(formatAddress("", "x@example.com")).toBe("x@example.com");
  });

  it("escapes text for the reply form", () => {
    expect(textToHtml("a < b\n& c\n\n\"d\"")).toBe("<p>a &lt; b<br>&amp; c</p><p>&quot;d&quot;</p>");
  });

  it("finds citation markers", () => {
    expect(citationParts("Notice is 90 days [1], renewal yearly [2, 3].")).toEqual([
      { text: "Notice is 90 days " }, { cite: [1], label: "[1]" }, { text: ", renewal yearly " }, { cite: [2, 3], label: "[2, 3]" }, { text: "." },
    ]);
  });
});

describe("prefs", () => {
  it("keeps good stored values and replaces bad ones with defaults, one by one", () => {
    expect(parsePrefs(JSON.stringify({ sentences: 5, tone: "sarcastic", theme: "dark", warmUp: "yes" }))).toEqual({
      ...DEFAULT_PREFS, sentences: 5, theme: "dark",
    });
    expect(parsePrefs("{not json")).toEqual(DEFAULT_PREFS);
  });
});

describe("theme", () => {
  it("follows Office's body colour, else the system", () => {
    expect(isDarkColor("#1f1f1f")).toBe(true);
    expect(isDarkColor("#FFFFFF")).toBe(false);
    expect(isDarkColor("bogus")).toBeUndefined();
    expect(wantsDark("office", "#262626", false)).toBe(true);
    expect(wantsDark("office", undefined, true)).toBe(true);
    expect(wantsDark("light", "#262626", true)).toBe(false);
  });
});

describe("structured results", () => {
  it("reads an extraction result: rows from data, lowest confidence under each field, failed checks, review", () => {
    const r = structured({
      runId: "r1", task: "extract", schema: "invoice", confidence: 0.55,
      data: { invoiceNumber: "INV-7", total: 12.5, lineItems: [{ description: "Paper", amount: 10 }, { description: "Pens", amount: 2.5 }] },
      fields: { invoiceNumber: { confidence: 0.9 }, total: { confidence: 0.4 }, "lineItems[0].amount": { confidence: 0.7 }, "lineItems[1].amount": { confidence: 0.6 } },
      validation: { valid: true, repaired: false, problems: [], rules: [{ rule: "total", status: "fail", message: "total is not subtotal + tax", fields: [] },
        { rule: "dates", status: "pass", message: "ok", fields: [] }] },
      review: { id: "rv1", reasons: ["confidence 0.55 below 0.6"] },
    });
    expect(r.rows).toEqual([
      { name: "invoiceNumber", value: "INV-7", raw: "INV-7", confidence: 0.9 },
      { name: "total", value: "12.5", raw: 12.5, confidence: 0.4 },
      { name: "lineItems", value: "Paper · 10\nPens · 2.5", raw: [{ description: "Paper", amount: 10 }, { description: "Pens", amount: 2.5 }], confidence: 0.6 },
    ]);
    expect(r).toMatchObject({ confidence: 0.55, reviewId: "rv1", reasons: ["confidence 0.55 below 0.6"], problems: ["total is not subtotal + tax"] });
  });

  it("reads a triage answer", () => {
    expect(structured({ runId: "r2", label: "invoice", confidence: 0.8, labels: ["invoice", "fyi"], review: null }))
      .toMatchObject({ label: "invoice", confidence: 0.8, rows: [], reviewId: undefined });
  });

  it("parses edits back to the field's type", () => {
    expect(parseEdited("1,250.50", 3)).toBe(1250.5);
    expect(parseEdited("abc", 3)).toBe("abc");
    expect(parseEdited("[\"a\"]", ["x"])).toEqual(["a"]);
    expect(parseEdited("", null)).toBeNull();
  });
});

describe("conversationThread", () => {
  const mail = (n: number) => ({ from: `p${n}@example.com`, subject: "Q3", to: [], cc: [], date: `2026-11-0${n}`, body: `message ${n}` });
  const serving = (status: number, payload: unknown) => new Api({ base: "http://127.0.0.1:1", token: "t0ken", fetch: async (url) => {
    expect(String(url)).toBe("http://127.0.0.1:1/v1/mail/conversation/AAQk%2Fx%3D");
    return new Response(JSON.stringify(payload), { status, headers: { "content-type": "application/json" } });
  } });

  it("uses the newest message as the email and the others, newest first, as its thread", async () => {
    const t = await conversationThread(serving(200, { conversationId: "AAQk/x=", messages: [mail(1), mail(2), mail(3)] }), "AAQk/x=");
    expect(t?.source).toBe("microsoft365");
    expect(t?.email.body).toBe("message 3");
    expect(t?.thread.map((m) => m.body)).toEqual(["message 2", "message 1"]);
  });

  it("falls back (null) when the server is not signed in, does not know it, or has nothing more", async () => {
    expect(await conversationThread(serving(409, { code: "error", message: "not signed in" }), "AAQk/x=")).toBeNull();
    expect(await conversationThread(serving(404, { code: "not_found", message: "no" }), "AAQk/x=")).toBeNull();
    expect(await conversationThread(serving(200, { messages: [mail(1)] }), "AAQk/x=")).toBeNull();
  });
});

describe("addedRoots", () => {
  it("gives back only the folders the user added, in order: IT's stay on the server", () => {
    expect(addedRoots([
      { path: "/home/ana/Documents", source: "settings", exists: true },
      { path: "/home/ana/Projects", source: "added", exists: true },
      { path: "/mnt/old", source: "added", exists: false },
    ])).toEqual(["/home/ana/Projects", "/mnt/old"]);
  });
});
