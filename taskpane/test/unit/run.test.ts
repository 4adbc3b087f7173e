import { describe, expect, it } from "vitest";
import { Api } from "../../src/api/http";
import { IDLE, runReducer, type RunAction, type RunState } from "../../src/shared/run";
import { runStream } from "../../src/shared/stream";

const apply = (actions: RunAction[], from: RunState = IDLE) => actions.reduce(runReducer, from);
const ev = (event: string, data: unknown, at = 0): RunAction => ({ type: "event", event, data, at });

describe("runReducer", () => {
  it("waits, streams tokens as they come, and ends done with the run's meta and usage", () => {
    const meta = { runId: "r1", model: "SmolLM2", backend: "llama.cpp", task: "summarize", template: "summarize@v1", truncated: false };
    const states: RunState[] = [];
    let state = IDLE;
    for (const action of [{ type: "start", at: 100 } as RunAction, ev("meta", meta, 101), ev("token", { text: "Carol" }, 150), ev("token", { text: " needs" }, 160), ev("done", { runId: "r1" }, 170)]) {
      state = runReducer(state, action);
      states.push(state);
    }
    expect(states.map((s) => s.phase)).toEqual(["waiting", "waiting", "streaming", "streaming", "done"]);
    expect(states.map((s) => s.text)).toEqual(["", "", "Carol", "Carol needs", "Carol needs"]);
    expect(state.meta).toEqual(meta);
    expect(state.firstTokenAt! - state.startedAt!).toBe(50);
  });

  it("fails on an error event, naming a busy model as such", () => {
    expect(apply([{ type: "start", at: 0 }, ev("error", { code: "busy", message: "full" })]).problem).toEqual({ kind: "busy", code: "busy", message: "full" });
    expect(apply([{ type: "start", at: 0 }, ev("error", { code: "shutdown", message: "stopping" })]).problem?.kind).toBe("unavailable");
  });

  it("says so when the stream closes without done", () => {
    const state = apply([{ type: "start", at: 0 }, ev("token", { text: "half" }), { type: "ended" }]);
    expect(state.phase).toBe("failed");
    expect(state.problem?.kind).toBe("stream");
    expect(state.text).toBe("half");
  });

  it("keeps the text on cancel and ignores events that arrive after it", () => {
    const state = apply([{ type: "start", at: 0 }, ev("token", { text: "so far" }), { type: "cancel" }, ev("token", { text: " late" }), { type: "ended" }]);
    expect(state).toMatchObject({ phase: "cancelled", text: "so far" });
  });

  it("collects extraction progress and results, and ask sources; ignores unknown events", () => {
    const state = apply([
      { type: "start", at: 0 },
      ev("progress", { stage: "generating", tokens: 12, maxTokens: 300, field: "vendor" }),
      ev("whatever", { x: 1 }),
      ev("result", { data: { total: 12 } }),
      ev("sources", { sources: [{ number: 1, title: "Contract.docx", snippet: "90 days", score: 0.8 }] }),
    ]);
    expect(state.progress?.field).toBe("vendor");
    expect(state.phase).toBe("streaming");
    expect(state.result).toEqual({ data: { total: 12 } });
    expect(state.sources?.[0].title).toBe("Contract.docx");
  });
});

describe("runStream", () => {
  function fakeServer(parts: string[], gate?: Promise<void>) {
    return new Api({ base: "http://127.0.0.1:1", token: "t0ken", fetch: async (_u, init) => {
      const signal = init?.signal ?? undefined;
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          signal?.addEventListener("abort", () => controller.error(new DOMException("aborted", "AbortError")));
          for (const [i, p] of parts.entries()) {
            if (i === 1 && gate) await gate;
            if (signal?.aborted) return;
            controller.enqueue(encoder.encode(p));
          }
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    } });
  }

  it("dispatches every event in order and ends done", async () => {
    const actions: RunAction[] = [];
    await runStream(fakeServer(["event: token\ndata: {\"text\":\"a\"}\n\n", "event: token\ndata: {\"text\":\"b\"}\n\nevent: done\ndata: {}\n\n"]),
      "/v1/summarize", {}, (a) => actions.push(a), new AbortController().signal);
    expect(apply(actions)).toMatchObject({ phase: "done", text: "ab" });
  });

  it("cancels cleanly when aborted mid-stream", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const controller = new AbortController();
    const actions: RunAction[] = [];
    const running = runStream(fakeServer(["event: token\ndata: {\"text\":\"a\"}\n\n", "event: token\ndata: {\"text\":\"b\"}\n\n"], gate),
      "/v1/summarize", {}, (a) => {
        actions.push(a);
        if (a.type === "event") controller.abort();
      }, controller.signal);
    release();
    await running;
    expect(apply(actions)).toMatchObject({ phase: "cancelled", text: "a" });
    expect(actions.at(-1)).toEqual({ type: "cancel" });
  });

  it("turns a 429 into a busy problem with its Retry-After", async () => {
    const api = new Api({ base: "http://127.0.0.1:1", token: "t0ken", fetch: async () =>
      new Response(JSON.stringify({ code: "busy", message: "busy", retryAfter: 4 }), { status: 429, headers: { "retry-after": "4" } }) });
    const actions: RunAction[] = [];
    await runStream(api, "/v1/summarize", {}, (a) => actions.push(a), new AbortController().signal);
    expect(apply(actions).problem).toEqual({ kind: "busy", code: "busy", message: "busy", retryAfter: 4 });
  });
});
