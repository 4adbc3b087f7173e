/**
 * The dashboard's access token. `deskpilot dashboard` opens `/dashboard/#token=...`: a URL fragment is never
 * sent to a server (nor written to its logs or a proxy's), unlike the query the task pane's manifest uses.
 * On start the page moves the token into sessionStorage (this tab only, gone when it closes) and removes
 * the fragment from the address with history.replaceState, so it is not left in the history or a copied
 * link. A token in the fragment wins over a stored one: after `deskpilot token rotate` the new link works.
 */

import { forgetTokenOf, type HistoryLike, type Place, type StorageLike, takeTokenFrom, type TokenPlace } from "../api/token";

export const FRAGMENT_PARAM = "token";
export const DASHBOARD_TOKEN_KEY = "deskpilot.dashboard.token";

const DASHBOARD: TokenPlace = { param: FRAGMENT_PARAM, key: DASHBOARD_TOKEN_KEY, fragment: true };

/** The token from the address's fragment (stored, then removed from the address) or from this tab's storage. */
export function takeFragmentToken(place?: Place, history?: HistoryLike, store?: StorageLike): string | undefined {
  return takeTokenFrom(DASHBOARD, place, history, store);
}

/** Drop the stored token once the server refused it (rotated): it can never work again. */
export function forgetFragmentToken(store?: Pick<Storage, "removeItem">): void {
  forgetTokenOf(DASHBOARD_TOKEN_KEY, store);
}
