/** Start the dashboard: an auditor's report when the page carries its data, else the live dashboard. */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Api } from "../api/http";
import { LiveDashboard, Report } from "./App";
import { reportData } from "./data";
import { forgetFragmentToken, takeFragmentToken } from "./token";

function boot(): void {
  const root = document.getElementById("root");
  if (!root) return;
  const data = reportData();
  root.textContent = "";
  if (data) {
    createRoot(root).render(
      <StrictMode>
        <Report data={data} />
      </StrictMode>,
    );
    return;
  }
  // First: the token leaves the address bar as soon as the page's code runs.
  const api = new Api({ token: takeFragmentToken() ?? null });
  api.onRefused(() => forgetFragmentToken()); // rotated: the stored token can never work again
  createRoot(root).render(
    <StrictMode>
      <LiveDashboard api={api} />
    </StrictMode>,
  );
}

boot();
