// Retry policy maths: pure functions, specified by tables.
import type { RetryPolicy } from "../src/model/retry-policy";
import {
  DEFAULT_RETRY_POLICY,
  describeRetryPolicy,
  nextDelay,
  parseRetrySchedule,
  retryPolicySchema,
} from "../src/model/retry-policy";

const S = 1000;
const M = 60 * S;
const H = 60 * M;

const mid = () => 0.5; // no jitter: 1 + jitter * (2 * 0.5 - 1) = 1
const low = () => 0; // the smallest jitter factor, 1 - jitter
const high = () => 0.999999; // just under the largest, 1 + jitter

const exponential = (over: Partial<Extract<RetryPolicy, { strategy: "exponential" }>> = {}): RetryPolicy =>
  retryPolicySchema.parse({ max_attempts: 10, strategy: "exponential", ...over });
const linear = (over: Partial<Extract<RetryPolicy, { strategy: "linear" }>> = {}): RetryPolicy =>
  retryPolicySchema.parse({ max_attempts: 10, strategy: "linear", ...over });
const schedule = (delays: number[], max_attempts = 10): RetryPolicy =>
  retryPolicySchema.parse({ max_attempts, strategy: "schedule", delays_ms: delays });

describe("retryPolicySchema", () => {
  it.each<[string, unknown, RetryPolicy]>([
    [
      "fills exponential defaults",
      { max_attempts: 5, strategy: "exponential" },
      { max_attempts: 5, strategy: "exponential", base_ms: 5 * S, factor: 2, cap_ms: H, jitter: 0.2 },
    ],
    [
      "fills linear defaults",
      { max_attempts: 5, strategy: "linear" },
      { max_attempts: 5, strategy: "linear", base_ms: M, step_ms: M, cap_ms: H },
    ],
    [
      "keeps a schedule as given",
      { max_attempts: 3, strategy: "schedule", delays_ms: [0, 1000] },
      { max_attempts: 3, strategy: "schedule", delays_ms: [0, 1000] },
    ],
    [
      "treats max_attempts alone as the default schedule",
      { max_attempts: 4 },
      { max_attempts: 4, strategy: "schedule", delays_ms: [5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H] },
    ],
  ])("%s", (_name, input, expected) => {
    expect(retryPolicySchema.parse(input)).toEqual(expected);
  });

  it.each<[string, unknown, string, string]>([
    ["max_attempts over 20", { max_attempts: 21 }, "max_attempts", "expected an integer from 1 to 20"],
    ["max_attempts of 0", { max_attempts: 0, strategy: "linear" }, "max_attempts", "expected an integer from 1 to 20"],
    ["fractional max_attempts", { max_attempts: 2.5 }, "max_attempts", "expected an integer from 1 to 20"],
    ["missing max_attempts", { strategy: "exponential" }, "max_attempts", "expected an integer from 1 to 20"],
    ["an unknown strategy", { max_attempts: 3, strategy: "fibonacci" }, "strategy", 'expected strategy "exponential", "linear" or "schedule"'],
    ["base_ms under 100", { max_attempts: 3, strategy: "exponential", base_ms: 99 }, "base_ms", "expected the first delay as an integer number of milliseconds"],
    ["factor over 10", { max_attempts: 3, strategy: "exponential", factor: 11 }, "factor", "expected the growth factor as a number from 1 to 10"],
    ["jitter over 1", { max_attempts: 3, strategy: "exponential", jitter: 1.5 }, "jitter", "expected the jitter fraction as a number from 0 to 1"],
    ["an empty schedule", { max_attempts: 3, strategy: "schedule", delays_ms: [] }, "delays_ms", "expected 1 to 19 delays"],
    ["20 delays", { max_attempts: 3, strategy: "schedule", delays_ms: Array<number>(20).fill(1000) }, "delays_ms", "expected 1 to 19 delays"],
    ["a negative delay", { max_attempts: 3, strategy: "schedule", delays_ms: [1000, -1] }, "delays_ms.1", "expected each delay"],
    ["a field of another strategy", { max_attempts: 3, strategy: "linear", factor: 2 }, "", "unknown field factor for strategy linear"],
  ])("rejects %s", (_name, input, path, message) => {
    const result = retryPolicySchema.safeParse(input);
    expect(result.success).toBe(false);
    const issues = result.error?.issues.map((i) => ({ path: i.path.join("."), message: i.message })) ?? [];
    expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });
});

describe("nextDelay", () => {
  it.each<[string, RetryPolicy, number, number | null]>([
    ["gives no delay before the first attempt", exponential(), 0, 0],
    ["starts exponential at base_ms", exponential(), 1, 5 * S],
    ["multiplies by factor each attempt", exponential(), 3, 20 * S],
    ["uses a custom factor", exponential({ factor: 3, base_ms: 1000 }), 4, 27 * S],
    ["caps exponential growth at cap_ms", exponential({ cap_ms: 30 * S }), 5, 30 * S],
    ["caps huge exponents without overflow", exponential({ max_attempts: 20, factor: 10 }), 19, H],
    ["returns null once max_attempts is reached", exponential({ max_attempts: 3 }), 3, null],
    ["returns null past max_attempts", exponential({ max_attempts: 3 }), 7, null],
    ["starts linear at base_ms", linear({ base_ms: 10 * S, step_ms: 5 * S }), 1, 10 * S],
    ["adds step_ms per linear attempt", linear({ base_ms: 10 * S, step_ms: 5 * S }), 4, 25 * S],
    ["caps linear growth at cap_ms", linear({ cap_ms: 3 * M }), 9, 3 * M],
    ["keeps linear constant with a zero step", linear({ step_ms: 0 }), 6, M],
    ["returns null when linear attempts run out", linear({ max_attempts: 2 }), 2, null],
    ["reads the schedule in order", schedule([S, 2 * S, 3 * S]), 2, 2 * S],
    ["reads the last scheduled delay", schedule([S, 2 * S, 3 * S]), 3, 3 * S],
    ["repeats the last delay when the schedule runs short", schedule([S, 2 * S, 3 * S]), 7, 3 * S],
    ["allows a zero delay", schedule([0]), 1, 0],
    ["returns null when the schedule's attempts run out", schedule([S], 4), 4, null],
    ["allows no retries at all", schedule([S], 1), 1, null],
    ["follows the default policy's first retry", DEFAULT_RETRY_POLICY, 1, 5 * S],
    ["follows the default policy's last retry", DEFAULT_RETRY_POLICY, 7, 10 * H],
    ["gives up after the default policy's 8 attempts", DEFAULT_RETRY_POLICY, 8, null],
  ])("%s", (_name, policy, attemptsMade, expected) => {
    expect(nextDelay(policy, attemptsMade, null, mid)).toBe(expected);
  });

  it.each<[string, RetryPolicy, number, () => number, number]>([
    ["spreads down by the jitter fraction", exponential({ jitter: 0.2 }), 2, low, 8 * S],
    ["spreads up by the jitter fraction", exponential({ jitter: 0.2 }), 2, high, 12 * S],
    ["keeps jitter within a wider fraction", exponential({ jitter: 0.5 }), 1, low, 2.5 * S],
    ["adds nothing with zero jitter", exponential({ jitter: 0 }), 2, high, 10 * S],
    ["never jitters above cap_ms", exponential({ cap_ms: 10 * S }), 5, high, 10 * S],
    ["jitters below cap_ms", exponential({ cap_ms: 10 * S }), 5, low, 8 * S],
    ["does not jitter linear delays", linear({ base_ms: 10 * S }), 1, low, 10 * S],
    ["does not jitter scheduled delays", schedule([10 * S]), 1, high, 10 * S],
  ])("%s", (_name, policy, attemptsMade, random, expected) => {
    expect(nextDelay(policy, attemptsMade, null, random)).toBe(expected);
  });

  it("keeps every jittered delay within ±jitter of the nominal delay", () => {
    const policy = exponential({ jitter: 0.2 });
    for (let i = 0; i < 200; i++) {
      const delay = nextDelay(policy, 3) ?? -1;
      expect(delay).toBeGreaterThanOrEqual(16 * S);
      expect(delay).toBeLessThanOrEqual(24 * S);
      expect(Number.isInteger(delay)).toBe(true);
    }
  });

  it.each<[string, RetryPolicy, number, number | null | undefined, number | null]>([
    ["waits for a Retry-After longer than the schedule", schedule([5 * S]), 1, 30 * S, 30 * S],
    ["keeps the schedule when Retry-After is shorter", schedule([5 * M]), 1, 30 * S, 5 * M],
    ["caps Retry-After at one hour", schedule([5 * S]), 1, 5 * H, H],
    ["keeps a schedule delay longer than the capped Retry-After", schedule([2 * H]), 1, 5 * H, 2 * H],
    ["ignores a null Retry-After", schedule([5 * S]), 1, null, 5 * S],
    ["ignores an absent Retry-After", schedule([5 * S]), 1, undefined, 5 * S],
    ["ignores a negative Retry-After", schedule([5 * S]), 1, -10 * S, 5 * S],
    ["still gives up when attempts are exhausted", schedule([5 * S], 2), 2, 30 * S, null],
    ["applies Retry-After on top of jittered delays", exponential(), 1, 10 * M, 10 * M],
  ])("%s", (_name, policy, attemptsMade, retryAfter, expected) => {
    expect(nextDelay(policy, attemptsMade, retryAfter, mid)).toBe(expected);
  });
});

describe("describeRetryPolicy", () => {
  it.each<[string, RetryPolicy, string]>([
    ["the default policy", DEFAULT_RETRY_POLICY, "8 attempts: now, then after 5s, 5m, 30m, 2h, 5h, 10h, 10h"],
    ["a short schedule repeating its last delay", schedule([30 * S, 5 * M], 5), "5 attempts: now, then after 30s, 5m, 5m, 5m"],
    ["exponential with jitter", exponential({ max_attempts: 4 }), "4 attempts: now, then after 5s, 10s, 20s (±20% jitter)"],
    ["linear", linear({ max_attempts: 3 }), "3 attempts: now, then after 1m, 2m"],
    ["a single attempt", schedule([S], 1), "1 attempt: now, no retries"],
  ])("describes %s", (_name, policy, expected) => {
    expect(describeRetryPolicy(policy)).toBe(expected);
  });
});

describe("parseRetrySchedule", () => {
  it.each<[string, number | undefined, RetryPolicy]>([
    ["30s,5m,1h", undefined, { max_attempts: 4, strategy: "schedule", delays_ms: [30 * S, 5 * M, H] }],
    ["30s, 5m", 6, { max_attempts: 6, strategy: "schedule", delays_ms: [30 * S, 5 * M] }],
    ["500ms", undefined, { max_attempts: 2, strategy: "schedule", delays_ms: [500] }],
    ["exponential", undefined, { max_attempts: 8, strategy: "exponential", base_ms: 5 * S, factor: 2, cap_ms: H, jitter: 0.2 }],
    ["Linear", 3, { max_attempts: 3, strategy: "linear", base_ms: M, step_ms: M, cap_ms: H }],
  ])("parses %j (max attempts %p)", (text, maxAttempts, expected) => {
    expect(parseRetrySchedule(text, maxAttempts)).toEqual(expected);
  });

  it.each<[string, number | undefined, string]>([
    ["", undefined, "expected a retry schedule: exponential, linear, or a comma list of durations such as 30s,5m,1h"],
    ["fibonacci", undefined, "expected a retry schedule: exponential, linear, or a comma list of durations"],
    ["30s,,5m", undefined, "expected a retry schedule"],
    ["30 seconds", undefined, "expected a retry schedule"],
    ["exponential", 0, "max_attempts: expected an integer from 1 to 20"],
    ["30s", 21, "max_attempts: expected an integer from 1 to 20"],
    [Array<string>(20).fill("1s").join(","), undefined, "expected 1 to 19 delays"],
    ["30s,8d", undefined, "delays_ms.1: expected each delay"],
  ])("rejects %j (max attempts %p)", (text, maxAttempts, message) => {
    expect(() => parseRetrySchedule(text, maxAttempts)).toThrow(message);
  });
});
