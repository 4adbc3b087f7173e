/**
 * The pane's HTTP client: same-origin fetch, JSON in and out, and one error type that says what went
 * wrong in terms the UI can act on (server not reachable, model busy with Retry-After, no such item).
 *
 * Every request carries the server's per-user access token (`Authorization: Bearer`, api/token.ts), set
 * in one place (`Api.request`, which the JSON calls and the event streams of sse.ts all go through). A 401
 * means the token is missing or no longer valid (`deskpilot token rotate`): only reopening the pane
 * brings a valid one (its start URL carries it), so the client stops there. It remembers the refusal,
 * sends nothing more, fails every later call with it at once, and tells its listeners (the UI's banner).
 */
import type { ErrorBody } from "./types";

export type ProblemKind =
  | "unreachable" // no HTTP answer at all: the server is not running, or its certificate is not trusted
  | "busy" // 429: the model's line is full; retry after `retryAfter` seconds
  | "unavailable" // 503: the model failed to load or the server is stopping
  | "missing" // 404: the server has no such item (a review, action or workflow it no longer knows)
  | "invalid" // 400: the request was refused (too long, empty, ...)
  | "unauthorized" // 401: no access token, or one that was rotated; the pane must be reopened
  | "forbidden" // 403: the local-only checks refused the request
  | "conflict" // 409: the state changed (already decided, automation switched off)
  | "server" // any other HTTP error
  | "stream"; // the stream ended with an `error` event or broke off

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly kind: ProblemKind,
    message: string,
    readonly status?: number,
    readonly code?: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException ? error.name === "AbortError" : (error as Error)?.name === "AbortError";
}

function retryAfterSeconds(header: string | null, body?: Partial<ErrorBody>): number | undefined {
  const fromBody = typeof body?.retryAfter === "number" ? body.retryAfter : undefined;
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds));
    const date = Date.parse(header); // Retry-After may also be an HTTP date
    if (!Number.isNaN(date)) return Math.max(0, Math.round((date - Date.now()) / 1000));
  }
  return fromBody;
}

const KIND_BY_STATUS: Record<number, ProblemKind> = { 400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "missing", 409: "conflict", 429: "busy", 503: "unavailable" };

/** An ApiError from a response that is not ok, using the server's ErrorBody when there is one. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: Partial<ErrorBody> = {};
  try {
    const parsed: unknown = await response.json();
    if (parsed && typeof parsed === "object") body = parsed as Partial<ErrorBody>;
  } catch {
    // not JSON: a proxy's page or an empty body
  }
  const kind = KIND_BY_STATUS[response.status] ?? (response.status >= 500 ? "unavailable" : "server");
  const message = body.message || `${response.status} ${response.statusText || "error"}`.trim();
  const retryAfter = retryAfterSeconds(response.headers.get("retry-after"), body);
  return new ApiError(kind, message, response.status, body.code, retryAfter);
}

/** fetch rejects with a TypeError when no HTTP answer came back: refused, reset, or a TLS failure. */
export function errorFromException(error: unknown): unknown {
  if (isAbort(error) || error instanceof ApiError) return error;
  return new ApiError("unreachable", error instanceof Error ? error.message : String(error));
}

/** The code of the refusal an Api without a token starts with (the server's own 401 code is `unauthorized`). */
export const NO_TOKEN = "no_token";

export interface ApiOptions {
  /**
   * The access token (api/token.ts `takeToken`), sent with every request. null: the pane was opened
   * without one (not from the add-in's manifest URL); then nothing is sent and every call fails as
   * `unauthorized` with code NO_TOKEN. Required, so no client can be made that forgets it.
   */
  token: string | null;
  /** Origin of the server; the pane is served by it, so this is `location.origin`. */
  base?: string;
  fetch?: typeof fetch;
}

export type RefusalListener = (refusal: ApiError) => void;

export class Api {
  readonly base: string;
  private readonly fetcher: typeof fetch;
  private readonly token: string | null;
  private refusal: ApiError | null;
  private readonly listeners = new Set<RefusalListener>();

  constructor(options: ApiOptions) {
    this.base = options.base ?? globalThis.location?.origin ?? "";
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.token = options.token || null;
    this.refusal = this.token ? null : new ApiError("unauthorized", "Deskpilot was opened without its access token", undefined, NO_TOKEN);
  }

  /** Why this client no longer sends requests (no token, or the server refused it), or null while it does. */
  get refused(): ApiError | null {
    return this.refusal;
  }

  /** Be told once when the server refuses the token; returns the function that stops listening. */
  onRefused(listener: RefusalListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  url(path: string): string {
    return new URL(path, this.base).toString();
  }

  /** The one place a request's headers are made: the caller's, then the token (which no caller overrides). */
  private headers(init: HeadersInit | undefined): Headers {
    const headers = new Headers(init);
    headers.set("Authorization", `Bearer ${this.token ?? ""}`);
    return headers;
  }

  /**
   * fetch with the token, turning "no answer" and "not ok" into ApiError; aborts pass through untouched.
   * Only to this server: the token never goes to another origin.
   */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    if (this.refusal) throw this.refusal;
    const url = this.url(path);
    if (new URL(url).origin !== new URL(this.base).origin) throw new Error(`not this server: ${url}`);
    let response: Response;
    try {
      response = await this.fetcher(url, { cache: "no-store", ...init, headers: this.headers(init.headers) });
    } catch (error) {
      throw errorFromException(error);
    }
    if (!response.ok) {
      const error = await errorFromResponse(response);
      if (error.kind === "unauthorized") this.refuse(error);
      throw error;
    }
    return response;
  }

  private refuse(error: ApiError): void {
    if (this.refusal) return; // two calls refused at once: say it once
    this.refusal = error;
    for (const listener of [...this.listeners]) listener(error);
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    const response = await this.request(path, { headers: { Accept: "application/json" }, signal });
    return (await response.json()) as T;
  }

  async post<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.send<T>("POST", path, body, signal);
  }

  async put<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.send<T>("PUT", path, body, signal);
  }

  private async send<T>(method: "POST" | "PUT", path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const response = await this.request(path, {
      method,
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    return (await response.json()) as T;
  }
}
