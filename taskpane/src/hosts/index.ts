/** Pick the host glue for the Office application the pane was opened in. */
import { createOutlookHost } from "./outlook";
import { createWordHost } from "./word";
import type { Host } from "./types";

export function createHost(info: { host: Office.HostType | null } | undefined): Host {
  if (typeof Office === "undefined" || !info?.host) return { kind: "none" };
  if (info.host === Office.HostType.Outlook) return createOutlookHost();
  if (info.host === Office.HostType.Word) return createWordHost();
  return { kind: "none" };
}

export type { Host, MailItem, NoHost, OutlookHost, WordHost } from "./types";
export { HostError } from "./types";
