// Who the pane says the user is when a person must decide (approvals, reviews, policy changes): Outlook's
// signed-in user, else what was entered in Settings, else no one; checked as the server checks a Person.
import { describe, expect, it } from "vitest";
import { addressProblem, asPerson, identityFor, nameProblem, officePerson, personLabel, prefilled } from "../../src/shared/identity";
import { DEFAULT_PREFS, parsePrefs } from "../../src/shared/prefs";

const BOB = { displayName: "Bob Lee", emailAddress: "bob@example.com" };
const ENTERED = { name: "Megan Bowen", address: "megan@contoso.example" };

describe("a person, as the server takes one", () => {
  it("takes a printable name and an email address's shape, trimmed", () => {
    expect(asPerson("  Megan Bowen ", " megan@contoso.example ")).toEqual({ name: "Megan Bowen", address: "megan@contoso.example" });
    expect(nameProblem("Megan")).toBeNull();
    expect(addressProblem("m@x.io")).toBeNull();
  });

  it("refuses what the server would refuse, saying why", () => {
    expect(nameProblem("   ")).toBe("Enter your name.");
    expect(nameProblem("Meg\u0007an")).toMatch(/letters/);
    expect(nameProblem("x".repeat(201))).toMatch(/200/);
    for (const address of ["megan", "megan@contoso", "me gan@contoso.example", "<megan@contoso.example>", "a@b@c.d", "megan@contoso."]) {
      expect(addressProblem(address), address).toMatch(/email address/);
    }
    expect(addressProblem("")).toBe("Enter your email address.");
    expect(asPerson("Megan", "megan")).toBeNull();
    expect(asPerson("", "megan@contoso.example")).toBeNull();
  });
});

describe("who the user is", () => {
  it("is Outlook's signed-in user where Office gives one, whatever Settings says", () => {
    expect(identityFor(ENTERED, BOB)).toEqual({ person: { name: "Bob Lee", address: "bob@example.com" }, source: "office" });
  });

  it("names an Outlook user without a display name by their address", () => {
    expect(officePerson({ displayName: "", emailAddress: "bob@example.com" })).toEqual({ name: "bob@example.com", address: "bob@example.com" });
  });

  it("is what Settings says where Office gives no usable user (Word, or a profile without an address)", () => {
    expect(identityFor(ENTERED, null)).toEqual({ person: ENTERED, source: "settings" });
    expect(identityFor(ENTERED, { displayName: "Bob Lee", emailAddress: "" })).toEqual({ person: ENTERED, source: "settings" });
  });

  it("is no one when neither says, or Settings holds something the server would refuse", () => {
    expect(identityFor({ name: "", address: "" }, null)).toBeNull();
    expect(identityFor({ name: "Megan", address: "" }, undefined)).toBeNull();
    expect(identityFor({ name: "Megan", address: "megan at contoso" }, null)).toBeNull();
  });

  it("fills Settings in from Outlook only where nothing was entered", () => {
    expect(prefilled({ ...DEFAULT_PREFS }, BOB)).toEqual({ ...DEFAULT_PREFS, name: "Bob Lee", address: "bob@example.com" });
    expect(prefilled({ ...DEFAULT_PREFS, ...ENTERED }, BOB)).toBeNull();
    expect(prefilled({ ...DEFAULT_PREFS, name: "Megan" }, BOB)).toBeNull();
    expect(prefilled({ ...DEFAULT_PREFS }, null)).toBeNull();
  });

  it("reads as a name with the address", () => {
    expect(personLabel(ENTERED)).toBe("Megan Bowen (megan@contoso.example)");
  });
});

describe("the name and address in the pane's prefs", () => {
  it("are kept, and a name stored before as `reviewer` becomes the name", () => {
    expect(parsePrefs(JSON.stringify(ENTERED))).toEqual({ ...DEFAULT_PREFS, ...ENTERED });
    expect(parsePrefs(JSON.stringify({ reviewer: "Megan Bowen" }))).toEqual({ ...DEFAULT_PREFS, name: "Megan Bowen" });
    expect(parsePrefs(JSON.stringify({ name: 7, address: "x".repeat(321) }))).toEqual(DEFAULT_PREFS);
  });
});
