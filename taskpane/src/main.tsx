/** Start the pane once Office.js says which application it is in (or that it is in none). */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Api } from "./api/http";
import { forgetToken, takeToken } from "./api/token";
import { createHost } from "./hosts";
import { App } from "./ui/App";

async function officeInfo(): Promise<{ host: Office.HostType | null } | undefined> {
  if (typeof Office === "undefined" || typeof Office.onReady !== "function") return undefined; // office.js failed to load
  // Outside Office, onReady resolves at once with host null; inside, when Office has initialised the pane.
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000));
  return Promise.race([Office.onReady(), timeout]);
}

async function boot(): Promise<void> {
  // First, before waiting for Office: the token leaves the address bar as soon as the pane's code runs.
  // The one client of the pane, made once: every request goes through it, with the token.
  const api = new Api({ token: takeToken() ?? null });
  api.onRefused(() => forgetToken()); // rotated: the stored token can never work again
  const info = await officeInfo();
  const root = document.getElementById("root");
  if (!root) return;
  root.textContent = "";
  createRoot(root).render(
    <StrictMode>
      <App api={api} host={createHost(info)} />
    </StrictMode>,
  );
}

void boot();
