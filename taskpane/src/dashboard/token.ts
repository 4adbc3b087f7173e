/**
 * The dashboard's access token. `deskpilot dashboard` opens `/dashboard/#token=...`: a URL fragment is never
 * sent to a server (nor written to its logs or a proxy's), unlike the query the task pane's manifest uses.
 * On start the page moves the token into sessionStorage (this tab only, gone when it closes) and removes
 * the fragment from the address with history.replaceState, so it is not left in the history or a copied
 * link. A token in the fragment wins over a stored one: after `deskpilot token rotate` the new link works.
 */

export const FRAGMENT_PARAM = "token";
export const DASHBOARD_TOKEN_KEY = "deskpilot.dashboard.token";

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

/** The token from the address's fragment (stored, then removed from the address) or from this tab's storage. */
export function takeFragmentToken(
  place: Place | undefined = globalThis.location,
  history: HistoryLike | undefined = globalThis.history,
  store: StorageLike | undefined = storage(),
): string | undefined {
  if (place) {
    const url = new URL(place.href);
    const fragment = new URLSearchParams(url.hash.replace(/^#/, ""));
    const fromUrl = fragment.get(FRAGMENT_PARAM);
    if (fromUrl !== null) {
      fragment.delete(FRAGMENT_PARAM);
      const rest = fragment.toString();
      url.hash = rest ? `#${rest}` : "";
      history?.replaceState(history.state, "", url.toString());
      if (fromUrl) {
        try {
          store?.setItem(DASHBOARD_TOKEN_KEY, fromUrl);
        } catch {
          // storage full or disabled: the token still works for this page
        }
        return fromUrl;
      }
    }
  }
  try {
    return store?.getItem(DASHBOARD_TOKEN_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

/** Drop the stored token once the server refused it (rotated): it can never work again. */
export function forgetFragmentToken(store: Pick<Storage, "removeItem"> | undefined = storage()): void {
  try {
    store?.removeItem(DASHBOARD_TOKEN_KEY);
  } catch {
    // storage disabled: nothing was kept
  }
}
