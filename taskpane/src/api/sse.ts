/**
 * Server-sent events over fetch. EventSource can only GET, and every AI task is a POST with a JSON body,
 * so we read the `text/event-stream` body ourselves. Cancelling is aborting the fetch: the server sees
 * the connection close and stops the model (server/sse.py).
 *
 * The parser follows the HTML standard's event-stream rules: lines end in CRLF, LF or CR; `event:` names
 * the event (default "message"); `data:` lines are joined with "\n"; a line starting with ":" is a comment
 * (the server's keep-alive); a blank line dispatches the event; one space after the colon is dropped.
 */
import { Api, ApiError } from "./http";

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

export interface StreamEvent {
  event: string;
  data: unknown;
}

export async function* parseSse(chunks: AsyncIterable<string>): AsyncGenerator<SseMessage> {
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  let pendingCR = false;

  function* line(text: string): Generator<SseMessage> {
    if (text === "") {
      if (data.length > 0) yield { event: event || "message", data: data.join("\n"), ...(id !== undefined ? { id } : {}) };
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // comment: keep-alive
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
  }

  for await (let chunk of chunks) {
    if (pendingCR && chunk.startsWith("\n")) chunk = chunk.slice(1); // a CRLF split across two chunks
    pendingCR = false;
    buffer += chunk;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i];
      if (c !== "\n" && c !== "\r") continue;
      yield* line(buffer.slice(start, i));
      if (c === "\r") {
        if (i + 1 === buffer.length) pendingCR = true;
        else if (buffer[i + 1] === "\n") i++;
      }
      start = i + 1;
    }
    buffer = buffer.slice(start);
  }
  // A stream that ends without a final blank line does not dispatch its last event (per the standard).
}

async function* decoded(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder(); // stream mode keeps a UTF-8 character split across chunks whole
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        const tail = decoder.decode();
        if (tail) yield tail;
        return;
      }
      yield decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * POST `body` to `path` and yield its events with their JSON payloads decoded. HTTP errors (429 with
 * Retry-After, 503, ...) are thrown as ApiError before the first event; an abort ends the stream.
 */
export async function* streamEvents(api: Api, path: string, body: unknown, signal: AbortSignal): AsyncGenerator<StreamEvent> {
  const response = await api.request(path, {
    method: "POST",
    headers: { Accept: "text/event-stream", "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.body) throw new ApiError("stream", "the server sent an empty response");
  const type = response.headers.get("content-type") ?? "";
  if (!type.startsWith("text/event-stream")) throw new ApiError("stream", `expected an event stream, got ${type || "nothing"}`);
  try {
    for await (const message of parseSse(decoded(response.body))) {
      let data: unknown = message.data;
      try {
        data = JSON.parse(message.data);
      } catch {
        // a plain-text payload stays a string
      }
      yield { event: message.event, data };
    }
  } catch (error) {
    if (signal.aborted) return;
    throw new ApiError("stream", `the connection broke off: ${(error as Error).message ?? error}`);
  }
}
