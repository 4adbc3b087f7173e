/**
 * Who the pane says the user is, when it asks for something only a person may do: approving, rejecting or
 * retrying an action, deciding a review, changing an automation's policy. The server records the person
 * (`{name, address}`) in lineage and refuses those requests without one.
 *
 * In Outlook the person is the mailbox's signed-in user (Office.js `userProfile`). Word has no such API, so
 * there (and in a browser) it is what the user entered in Settings, which Outlook fills in when it knows
 * the user and nothing was entered. When neither says, there is no person: the pane does not send a
 * request the server would refuse, and says where to enter one.
 *
 * The checks mirror the server's (core/wire.Person): a printable name, and an email address's shape.
 */
import type { Person } from "../api/types";
import type { OfficeUser } from "../hosts/types";

export const NAME_MAX = 200;
export const ADDRESS_MAX = 320;

const CONTROL = /[\u0000-\u001f\u007f]/;
// One "@", no spaces, angle brackets or quotes, a dot in the domain (the server's pattern).
const ADDRESS = /^[^@\s<>"\u0000-\u001f\u007f]+@[^@\s<>"\u0000-\u001f\u007f]+\.[^@\s<>"\u0000-\u001f\u007f.]+$/;

/** What is wrong with a name, in words; null when it is fine. */
export function nameProblem(name: string): string | null {
  const value = name.trim();
  if (!value) return "Enter your name.";
  if (value.length > NAME_MAX) return `At most ${NAME_MAX} characters.`;
  if (CONTROL.test(value)) return "Use letters, digits and punctuation only.";
  return null;
}

/** What is wrong with an email address, in words; null when it is fine. */
export function addressProblem(address: string): string | null {
  const value = address.trim();
  if (!value) return "Enter your email address.";
  if (value.length < 3 || value.length > ADDRESS_MAX || !ADDRESS.test(value)) return "Enter an email address, like name@example.com.";
  return null;
}

/** The person with this name and address (trimmed), or null when either would be refused. */
export function asPerson(name: string, address: string): Person | null {
  if (nameProblem(name) || addressProblem(address)) return null;
  return { name: name.trim(), address: address.trim() };
}

/** From Office (Outlook's signed-in user) or from what the user entered in Settings. */
export type IdentitySource = "office" | "settings";

export interface Identity {
  person: Person;
  source: IdentitySource;
}

/** Office's user, as a person: a user with an address but no display name is named by the address. */
export function officePerson(user: OfficeUser | null | undefined): Person | null {
  if (!user) return null;
  return asPerson(user.displayName || user.emailAddress, user.emailAddress);
}

/** Who the user is: Outlook's signed-in user where Office gives one, else the name and address in Settings. */
export function identityFor(entered: { name: string; address: string }, user: OfficeUser | null | undefined): Identity | null {
  const office = officePerson(user);
  if (office) return { person: office, source: "office" };
  const person = asPerson(entered.name, entered.address);
  return person ? { person, source: "settings" } : null;
}

/**
 * Settings filled in from Outlook's user where the user entered neither a name nor an address (so that
 * Word, which cannot ask Office, knows them too); null when there is nothing to fill in.
 */
export function prefilled<T extends { name: string; address: string }>(entered: T, user: OfficeUser | null | undefined): T | null {
  const office = officePerson(user);
  if (!office || entered.name.trim() || entered.address.trim()) return null;
  return { ...entered, name: office.name, address: office.address };
}

/** "Bob Lee (bob@example.com)". */
export function personLabel(person: Person): string {
  return `${person.name} (${person.address})`;
}
