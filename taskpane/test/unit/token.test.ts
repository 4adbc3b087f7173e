import { describe, expect, it } from "vitest";
import { forgetToken, takeToken, TOKEN_KEY } from "../../src/api/token";
import { DASHBOARD_TOKEN_KEY, takeFragmentToken } from "../../src/dashboard/token";

function memoryStore(initial: Record<string, string> = {}) {
  const data = new Map(Object.entries(initial));
  return {
    data,
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => void data.set(k, v),
    removeItem: (k: string) => void data.delete(k),
  };
}

function fakeHistory() {
  const calls: (string | undefined)[] = [];
  return { calls, state: { kept: true }, replaceState(_data: unknown, _unused: string, url?: string | URL | null) { calls.push(url?.toString()); } };
}

const START = "https://localhost:8765/taskpane/index.html?host=outlook&token=s3cr%2Bt-_x&_host_Info=Outlook%24Win32#top";

describe("takeToken", () => {
  it("takes the token from the start URL, keeps it for the session and removes only it from the address", () => {
    const store = memoryStore();
    const history = fakeHistory();
    expect(takeToken({ href: START }, history, store)).toBe("s3cr+t-_x");
    expect(store.data.get(TOKEN_KEY)).toBe("s3cr+t-_x");
    expect(history.calls).toEqual(["https://localhost:8765/taskpane/index.html?host=outlook&_host_Info=Outlook%24Win32#top"]);
  });

  it("reads the stored token after a reload (no token in the address), and leaves the address alone", () => {
    const store = memoryStore({ [TOKEN_KEY]: "stored" });
    const history = fakeHistory();
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html?host=word" }, history, store)).toBe("stored");
    expect(history.calls).toEqual([]);
  });

  it("prefers a token in the URL to a stored one: a reopened pane after a rotation brings the new one", () => {
    const store = memoryStore({ [TOKEN_KEY]: "old" });
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html?token=new" }, fakeHistory(), store)).toBe("new");
    expect(store.data.get(TOKEN_KEY)).toBe("new");
  });

  it("has none without one in the URL or in storage; an empty one is removed from the address", () => {
    const history = fakeHistory();
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html?host=outlook&token=" }, history, memoryStore())).toBeUndefined();
    expect(history.calls).toEqual(["https://localhost:8765/taskpane/index.html?host=outlook"]);
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html" }, fakeHistory(), undefined)).toBeUndefined();
  });

  it("still works for this page where storage throws (disabled, full)", () => {
    const broken = {
      getItem: () => { throw new Error("SecurityError"); },
      setItem: () => { throw new Error("QuotaExceededError"); },
      removeItem: () => { throw new Error("SecurityError"); },
    };
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html?token=abc" }, fakeHistory(), broken)).toBe("abc");
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html" }, fakeHistory(), broken)).toBeUndefined();
    expect(() => forgetToken(broken)).not.toThrow();
  });
});

describe("forgetToken", () => {
  it("drops the stored token, so a reload asks for the pane to be opened properly", () => {
    const store = memoryStore({ [TOKEN_KEY]: "rotated", other: "kept" });
    forgetToken(store);
    expect(store.data.has(TOKEN_KEY)).toBe(false);
    expect(store.data.get("other")).toBe("kept");
    expect(takeToken({ href: "https://localhost:8765/taskpane/index.html" }, fakeHistory(), store)).toBeUndefined();
  });
});

// The dashboard's token comes in the URL fragment (`deskpilot dashboard`), through the same code.
describe("takeFragmentToken", () => {
  it("takes the token from the fragment, keeps it for the tab and removes only it from the address", () => {
    const store = memoryStore();
    const history = fakeHistory();
    expect(takeFragmentToken({ href: "https://localhost:8765/dashboard/?x=1#token=s3cr%2Bt&view=cost" }, history, store)).toBe("s3cr+t");
    expect(store.data.get(DASHBOARD_TOKEN_KEY)).toBe("s3cr+t");
    expect(history.calls).toEqual(["https://localhost:8765/dashboard/?x=1#view=cost"]);
  });

  it("leaves no empty fragment behind, and reads the stored token after a reload", () => {
    const store = memoryStore();
    const history = fakeHistory();
    takeFragmentToken({ href: "https://localhost:8765/dashboard/#token=abc" }, history, store);
    expect(history.calls).toEqual(["https://localhost:8765/dashboard/"]);
    const later = fakeHistory();
    expect(takeFragmentToken({ href: "https://localhost:8765/dashboard/" }, later, store)).toBe("abc");
    expect(later.calls).toEqual([]);
  });

  it("has no token when neither the address nor the tab has one", () => {
    expect(takeFragmentToken({ href: "https://localhost:8765/dashboard/" }, fakeHistory(), memoryStore())).toBeUndefined();
  });
});
