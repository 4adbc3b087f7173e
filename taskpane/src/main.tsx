/** Start the pane once Office.js says which application it is in (or that it is in none). */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Api } from "./api/http";
import { createHost } from "./hosts";
import { App } from "./ui/App";

async function officeInfo(): Promise<{ host: Office.HostType | null } | undefined> {
  if (typeof Office === "undefined" || typeof Office.onReady !== "function") return undefined; // office.js failed to load
  // Outside Office, onReady resolves at once with host null; inside, when Office has initialised the pane.
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000));
  return Promise.race([Office.onReady(), timeout]);
}

async function boot(): Promise<void> {
  const info = await officeInfo();
  const root = document.getElementById("root");
  if (!root) return;
  root.textContent = "";
  createRoot(root).render(
    <StrictMode>
      <App api={new Api()} host={createHost(info)} />
    </StrictMode>,
  );
}

void boot();
