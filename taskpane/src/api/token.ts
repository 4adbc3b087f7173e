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

interface Place {
  href: string;
}
interface HistoryLike {
  state: unknown;
  replaceState(data: unknown, unused: string, url?: string | URL | null): void;
}
type StorageLike = Pick<Storage, "getItem" | "setItem" | "removeItem">;

function storage(): StorageLike | undefined {
  try {
    return globalThis.sessionStorage; // may throw where storage is disabled
  } catch {
    return undefined;
  }
}

/** The token from the start URL (stored, then removed from the address) or from this session's storage. */
export function takeToken(
  place: Place | undefined = globalThis.location,
  history: HistoryLike | undefined = globalThis.history,
  store: StorageLike | undefined = storage(),
): string | undefined {
  if (place) {
    const url = new URL(place.href);
    const fromUrl = url.searchParams.get(TOKEN_PARAM);
    if (fromUrl !== null) {
      url.searchParams.delete(TOKEN_PARAM);
      history?.replaceState(history.state, "", url.toString());
      if (fromUrl) {
        try {
          store?.setItem(TOKEN_KEY, fromUrl);
        } catch {
          // storage full or disabled: the token still works for this page
        }
        return fromUrl;
      }
    }
  }
  try {
    return store?.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * Drop the stored token once the server has refused it (rotated): it can never work again, and a reload
 * then says how to open the pane with the new one instead of trying the old one.
 */
export function forgetToken(store: Pick<Storage, "removeItem"> | undefined = storage()): void {
  try {
    store?.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing was kept
  }
}
