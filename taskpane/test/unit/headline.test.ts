import { describe, expect, it } from "vitest";
import { headlineRequest, subjectFrom, tidySubject } from "../../src/shared/headline";
import { IDLE, type RunState } from "../../src/shared/run";

const email = { subject: "Q3", from: "Carol <carol@example.com>", to: [], cc: [], date: null, body: "Hi" };

describe("headline subject", () => {
  it("asks for the headline length of a summary of the email", () => {
    expect(headlineRequest(email, "item-1")).toEqual({ email, length: "headline", client: "outlook", sourceRef: "item-1" });
  });

  it("tidies a model's line into a subject", () => {
    expect(tidySubject('  Subject: "Q3 figures due Tuesday."  ')).toBe("Q3 figures due Tuesday");
    expect(tidySubject("x".repeat(200))).toHaveLength(120);
  });

  it("prefers the checked headline, and waits for the run to finish", () => {
    const done: RunState = { ...IDLE, phase: "done", text: "Marco presents Friday." };
    expect(subjectFrom(done)).toBe("Marco presents Friday");
    const grounded = {
      runId: "r", task: "summarize", dropped: [], written: 1, supported: 0, fallback: true, checkMs: 1,
      sentences: [{ text: "The board meeting moved to Thursday 10 am", kind: "quoted" as const, score: 1, sourceSentence: null }],
    };
    expect(subjectFrom({ ...done, grounded })).toBe("The board meeting moved to Thursday 10 am");
    expect(subjectFrom({ ...done, phase: "streaming" })).toBeNull();
    expect(subjectFrom({ ...done, text: " " })).toBeNull();
  });
});
