import { describe, expect, it } from "vitest";
import { changedFields, decisionFor, moveIndex, prefilledValues, queuedSourceOf, reviewKey, sourceTextOf } from "../../src/shared/review";
import type { FieldRow } from "../../src/shared/result";

const el = (tagName: string, role?: string) => ({ tagName, getAttribute: (n: string) => (n === "role" ? role ?? null : null) }) as unknown as EventTarget;
const reviewer = { name: "Bob Lee", address: "bob@example.com" };
const rows: FieldRow[] = [
  { name: "invoiceNumber", value: "INV-1", raw: "INV-1" },
  { name: "total", value: "12.5", raw: 12.5 },
  { name: "lineItems", value: "a", raw: [{ a: 1 }] },
];

describe("reviewKey", () => {
  it("Enter accepts from the card or a one-line field, but not on a button or in a multi-line field", () => {
    expect(reviewKey({ key: "Enter", target: el("ARTICLE") })).toBe("accept");
    expect(reviewKey({ key: "Enter", target: el("INPUT") })).toBe("accept");
    expect(reviewKey({ key: "Enter", target: el("BUTTON") })).toBeNull();
    expect(reviewKey({ key: "Enter", target: el("DIV", "button") })).toBeNull();
    expect(reviewKey({ key: "Enter", target: el("TEXTAREA") })).toBeNull();
  });

  it("J, K and E move and edit, except while typing in a field or with a modifier", () => {
    expect(reviewKey({ key: "j", target: el("BODY") })).toBe("next");
    expect(reviewKey({ key: "K", target: el("ARTICLE") })).toBe("previous");
    expect(reviewKey({ key: "e", target: null })).toBe("edit");
    expect(reviewKey({ key: "j", target: el("INPUT") })).toBeNull();
    expect(reviewKey({ key: "e", target: el("TEXTAREA") })).toBeNull();
    expect(reviewKey({ key: "j", target: el("BODY"), ctrlKey: true })).toBeNull();
    expect(reviewKey({ key: "x", target: el("BODY") })).toBeNull();
  });
});

describe("moveIndex", () => {
  it("moves within the queue and stays at either end", () => {
    expect(moveIndex(0, 3, "next")).toBe(1);
    expect(moveIndex(2, 3, "next")).toBe(2);
    expect(moveIndex(0, 3, "previous")).toBe(0);
    expect(moveIndex(0, 0, "next")).toBe(0);
  });
});

describe("decisionFor", () => {
  const opened = new Date("2026-12-07T15:00:00Z");
  it("accepts when nothing was changed, with when the review was opened", () => {
    expect(decisionFor(rows, prefilledValues(rows), reviewer, opened))
      .toEqual({ decision: "accept", reviewer, openedAt: "2026-12-07T15:00:00.000Z" });
  });

  it("edits exactly the changed fields, in their types", () => {
    const values = { ...prefilledValues(rows), total: "13.75", lineItems: '[{"a":2}]' };
    expect(changedFields(rows, values)).toEqual({ total: 13.75, lineItems: [{ a: 2 }] });
    expect(decisionFor(rows, values, reviewer, opened)).toEqual({
      decision: "edit", fields: { total: 13.75, lineItems: [{ a: 2 }] }, reviewer, openedAt: "2026-12-07T15:00:00.000Z",
    });
  });
});

describe("sourceTextOf", () => {
  it("reads the text a run kept, or says there is none", () => {
    expect(sourceTextOf({ input: { text: "Invoice INV-1" } })).toBe("Invoice INV-1");
    expect(sourceTextOf({ input: { email: { body: "Hi" } } })).toBe("Hi");
    expect(sourceTextOf({ input: null })).toBeNull();
    expect(sourceTextOf({ input: { text: " " } })).toBeNull();
  });
});

describe("queuedSourceOf", () => {
  it("is the text a pending review carries, and null where it carries none", () => {
    expect(queuedSourceOf({ sourceText: "Invoice NW-2041\nTotal 102.00" })).toBe("Invoice NW-2041\nTotal 102.00");
    expect(queuedSourceOf({ sourceText: null })).toBeNull();
    expect(queuedSourceOf({ sourceText: "  \n" })).toBeNull();
    expect(queuedSourceOf({})).toBeNull();
  });
});
