/** The folders documents may be indexed from, as the server lists them (GET /v1/index/roots). */
import type { IndexRoot } from "../api/types";

/** The folders the user added, in order: what PUT /v1/index/roots takes back, less or more one folder.
 * Those from the settings are IT's; the server keeps them whatever the pane sends. */
export function addedRoots(roots: readonly IndexRoot[]): string[] {
  return roots.filter((r) => r.source === "added").map((r) => r.path);
}
