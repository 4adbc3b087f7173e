/**
 * The pane's access token: the server's per-user secret (server/core/token.py), which every request but
 * /healthz carries as `Authorization: Bearer <token>`.
 *
 * The pane receives it in its start URL (`index.html?host=outlook&token=...`), written into the per-user
 * manifest by `deskpilot install`. On start it moves the token into sessionStorage (this pane's session
 * only, gone when it closes) and removes it from the visible address with history.replaceState, so it is
 * not left in the address, the history or a copied link. A token in the URL wins over a stored one: after
 * `deskpilot token rotate` the reopened pane's URL carries the new token.
 */

export const TOKEN_PARAM = "token";
export const TOKEN_KEY = "deskpilot.token";

export interface Place {
  href: string;
}
export interface HistoryLike {
  state: unknown;
  replaceState(data: unknown, unused: string, url?: string | URL | null): void;
}
export type StorageLike = Pick<Storage, "getItem" | "setItem" | "removeItem">;

function storage(): StorageLike | undefined {
  try {
    return globalThis.sessionStorage; // may throw where storage is disabled
  } catch {
    return undefined;
  }
}

/** Where a page receives its token: a query or fragment parameter, and the sessionStorage key it keeps it under. */
export interface TokenPlace {
  param: string;
  key: string;
  fragment?: boolean; // in the URL's fragment (#token=...), which a browser never sends to a server
}

const PANE: TokenPlace = { param: TOKEN_PARAM, key: TOKEN_KEY };

/** The token from the address (stored, then removed from the address) or from this session's storage. */
export function takeTokenFrom(
  where: TokenPlace,
  place: Place | undefined = globalThis.location,
  history: HistoryLike | undefined = globalThis.history,
  store: StorageLike | undefined = storage(),
): string | undefined {
  if (place) {
    const url = new URL(place.href);
    const params = where.fragment ? new URLSearchParams(url.hash.replace(/^#/, "")) : url.searchParams;
    const fromUrl = params.get(where.param);
    if (fromUrl !== null) {
      params.delete(where.param); // url.searchParams is live: the query changes with it
      if (where.fragment) {
        const rest = params.toString();
        url.hash = rest ? `#${rest}` : "";
      }
      history?.replaceState(history.state, "", url.toString());
      if (fromUrl) {
        try {
          store?.setItem(where.key, fromUrl);
        } catch {
          // storage full or disabled: the token still works for this page
        }
        return fromUrl;
      }
    }
  }
  try {
    return store?.getItem(where.key) ?? undefined;
  } catch {
    return undefined;
  }
}

/** The pane's token, from its start URL's query or this session's storage. */
export function takeToken(place?: Place, history?: HistoryLike, store?: StorageLike): string | undefined {
  return takeTokenFrom(PANE, place, history, store);
}

/**
 * Drop the stored token once the server has refused it (rotated): it can never work again, and a reload
 * then says how to open the pane with the new one instead of trying the old one.
 */
export function forgetToken(store: Pick<Storage, "removeItem"> | undefined = storage()): void {
  forgetTokenOf(TOKEN_KEY, store);
}

export function forgetTokenOf(key: string, store: Pick<Storage, "removeItem"> | undefined = storage()): void {
  try {
    store?.removeItem(key);
  } catch {
    // storage disabled: nothing was kept
  }
}
