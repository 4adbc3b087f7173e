/**
 * Is the Deskpilot server there, and is its model ready? Polls /healthz (cheap, answers before the model
 * has loaded) faster while something is wrong, and reads /v1/models for the model and its queue. What the
 * server can do is not asked: the pane ships inside the server (server/static/taskpane), built against its
 * OpenAPI document, so every endpoint it calls is there. What Office can do is asked (hosts/).
 *
 * Once the access token is refused (or there was none: see api/http.ts), the state is "unauthorized" for
 * good and polling stops: no request can succeed until the pane is reopened with a valid token.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError, type Api } from "../api/http";
import type { Health, ModelsOut } from "../api/types";

export type Reach = "checking" | "ok" | "unreachable" | "unauthorized";

export interface ServerState {
  reach: Reach;
  /** Why the pane may not use the server (reach "unauthorized"): no token, or a refused one. */
  refused?: ApiError;
  online: boolean;
  health?: Health;
  models?: ModelsOut;
  error?: string;
  checkedAt?: Date;
}

const FAST_MS = 3_000;
const SLOW_MS = 20_000;

export function useServer(api: Api): ServerState & { refresh(): void } {
  const [state, setState] = useState<ServerState>(() =>
    api.refused ? { reach: "unauthorized", refused: api.refused, online: navigator.onLine } : { reach: "checking", online: navigator.onLine });
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const generation = useRef(0);

  const check = useCallback(async () => {
    const mine = ++generation.current;
    if (timer.current !== null) clearTimeout(timer.current);
    const refused = () => {
      const refusal = api.refused;
      if (refusal) setState((s) => ({ ...s, reach: "unauthorized", refused: refusal, online: navigator.onLine, checkedAt: new Date() }));
      return refusal !== null; // no next poll: nothing works until the pane is reopened
    };
    if (refused()) return;
    let next: Partial<ServerState>;
    try {
      const health = await api.get<Health>("/healthz");
      const models = await api.get<ModelsOut>("/v1/models").catch(() => undefined);
      next = { reach: "ok", health, models, error: undefined };
    } catch (error) {
      const unreachable = error instanceof ApiError && error.kind === "unreachable";
      next = { reach: unreachable ? "unreachable" : "ok", error: (error as Error).message };
    }
    if (mine !== generation.current || refused()) return; // /healthz is open, /v1/models needs the token
    setState((s) => ({ ...s, ...next, online: navigator.onLine, checkedAt: new Date() }));
    const settled = next.reach === "ok" && next.health?.model === "ready";
    timer.current = setTimeout(() => void check(), settled ? SLOW_MS : FAST_MS);
  }, [api]);

  useEffect(() => {
    void check();
    const online = () => {
      setState((s) => ({ ...s, online: navigator.onLine }));
      void check();
    };
    window.addEventListener("online", online);
    window.addEventListener("offline", online);
    // Any call of the pane's that the server refuses (a run, a poll) ends the polling here too.
    const unlisten = api.onRefused(() => void check());
    return () => {
      unlisten();
      window.removeEventListener("online", online);
      window.removeEventListener("offline", online);
      if (timer.current !== null) clearTimeout(timer.current);
      generation.current++;
    };
  }, [api, check]);

  const refresh = useCallback(() => void check(), [check]);
  return { ...state, refresh };
}
