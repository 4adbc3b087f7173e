/** What every view needs: the API client, the server's state, the user's settings and the current run. */
import { createContext, useContext } from "react";
import type { Api } from "../api/http";
import type { Identity } from "../shared/identity";
import type { Prefs } from "../shared/prefs";
import type { Host } from "../hosts";
import type { ServerState } from "./useServer";
import type { RunHandle } from "./useRun";
import type { WorkflowHandle } from "./useWorkflow";

export type View = "task" | "review" | "actions" | "status" | "settings";

export interface Pane {
  api: Api;
  host: Host;
  server: ServerState & { refresh(): void };
  prefs: Prefs;
  setPrefs(prefs: Prefs): void;
  /** Who approves, reviews and changes policies (Outlook's user, else Settings); null: not known yet. */
  identity: Identity | null;
  run: RunHandle;
  /** The workflow started on the open message, followed until it settles. */
  workflow: WorkflowHandle;
  /** Go to a view; `focus` names the item it should bring forward (a review id, an action id). */
  show(view: View, focus?: string): void;
  /** The item the current view was asked to bring forward, if any. */
  focus: string | null;
}

export const PaneContext = createContext<Pane | null>(null);

export function usePane(): Pane {
  const pane = useContext(PaneContext);
  if (!pane) throw new Error("usePane outside <PaneContext.Provider>");
  return pane;
}
