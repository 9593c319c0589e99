// Retry policy: the shape users send per webhook, and the pure maths of when the next
// attempt is due. No I/O here; dispatch/record.ts records attempts and schedules the jobs.
import { z } from "zod";
import { formatDuration, parseDuration } from "../util/duration";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const WEEK = 7 * 24 * HOUR;

/** Retry-After is honoured, but never pushes an attempt more than this far out. */
export const RETRY_AFTER_CAP_MS = HOUR;

const MAX_ATTEMPTS = 20;
/** Svix-like: 5s, 5m, 30m, 2h, 5h, 10h, 10h — about 28 hours from the first attempt to the last. */
const DEFAULT_DELAYS_MS: readonly number[] = [5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR];

const maxAttempts = z
  .number({ error: `expected an integer from 1 to ${MAX_ATTEMPTS}` })
  .int({ error: `expected an integer from 1 to ${MAX_ATTEMPTS}` })
  .min(1, { error: `expected an integer from 1 to ${MAX_ATTEMPTS}` })
  .max(MAX_ATTEMPTS, { error: `expected an integer from 1 to ${MAX_ATTEMPTS}` });

/** An integer number of milliseconds between min and one week. */
function millis(min: number, what: string) {
  const message = `expected ${what} as an integer number of milliseconds from ${min} to ${WEEK} (7 days)`;
  return z.number({ error: message }).int({ error: message }).min(min, { error: message }).max(WEEK, { error: message });
}

function fraction(min: number, max: number, what: string) {
  const message = `expected ${what} as a number from ${min} to ${max}`;
  return z.number({ error: message }).min(min, { error: message }).max(max, { error: message });
}

/** Names the fields a strategy accepts when a policy carries others. */
function fields(strategy: string, names: string[]) {
  return {
    error: (issue: { code?: string; keys?: string[] }) =>
      issue.code === "unrecognized_keys"
        ? `unknown field ${(issue.keys ?? []).join(", ")} for strategy ${strategy}; expected ${names.join(", ")}`
        : undefined,
  };
}

const exponentialSchema = z.strictObject({
  max_attempts: maxAttempts,
  strategy: z.literal("exponential"),
  base_ms: millis(100, "the first delay").default(5 * SECOND),
  factor: fraction(1, 10, "the growth factor").default(2),
  cap_ms: millis(100, "the longest delay").default(HOUR),
  jitter: fraction(0, 1, "the jitter fraction").default(0.2),
}, fields("exponential", ["max_attempts", "strategy", "base_ms", "factor", "cap_ms", "jitter"]));

const linearSchema = z.strictObject({
  max_attempts: maxAttempts,
  strategy: z.literal("linear"),
  base_ms: millis(100, "the first delay").default(MINUTE),
  step_ms: millis(0, "the step added per attempt").default(MINUTE),
  cap_ms: millis(100, "the longest delay").default(HOUR),
}, fields("linear", ["max_attempts", "strategy", "base_ms", "step_ms", "cap_ms"]));

// `strategy` defaults to "schedule", so `{"max_attempts": 5}` alone means the default schedule.
const scheduleSchema = z.strictObject({
  max_attempts: maxAttempts,
  strategy: z.literal("schedule").default("schedule"),
  delays_ms: z
    .array(millis(0, "each delay"), { error: "expected an array of delays in milliseconds such as [5000, 300000]" })
    .min(1, { error: `expected 1 to ${MAX_ATTEMPTS - 1} delays` })
    .max(MAX_ATTEMPTS - 1, { error: `expected 1 to ${MAX_ATTEMPTS - 1} delays` })
    .default(() => [...DEFAULT_DELAYS_MS]),
}, fields("schedule", ["max_attempts", "strategy", "delays_ms"]));

export const retryPolicySchema = z.discriminatedUnion("strategy", [exponentialSchema, linearSchema, scheduleSchema], {
  error: (issue) =>
    issue.code === "invalid_union"
      ? 'expected strategy "exponential", "linear" or "schedule" (or leave it out for the default schedule)'
      : undefined,
});

export type RetryPolicy = z.infer<typeof retryPolicySchema>;

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  max_attempts: 8,
  strategy: "schedule",
  delays_ms: [...DEFAULT_DELAYS_MS],
};

/**
 * The nominal delay before attempt `attemptsMade + 1` (no jitter, no Retry-After), or null
 * when the policy has no attempts left.
 */
function baseDelay(policy: RetryPolicy, attemptsMade: number): number | null {
  if (attemptsMade >= policy.max_attempts) return null;
  if (attemptsMade < 1) return 0; // the first attempt goes out at once
  switch (policy.strategy) {
    case "exponential":
      return Math.min(policy.cap_ms, policy.base_ms * policy.factor ** (attemptsMade - 1));
    case "linear":
      return Math.min(policy.cap_ms, policy.base_ms + policy.step_ms * (attemptsMade - 1));
    case "schedule": {
      // Fewer delays than retries: the last delay repeats.
      const delays = policy.delays_ms;
      return delays[Math.min(attemptsMade, delays.length) - 1] ?? 0;
    }
  }
}

/**
 * Milliseconds to wait before attempt number `attemptsMade + 1`, or null when `attemptsMade`
 * has reached `max_attempts`. Exponential delays carry ±`jitter` and never exceed `cap_ms`.
 * A receiver's Retry-After can lengthen the wait (up to one hour), never shorten it.
 */
export function nextDelay(
  policy: RetryPolicy,
  attemptsMade: number,
  retryAfterMs?: number | null,
  random: () => number = Math.random,
): number | null {
  const nominal = baseDelay(policy, attemptsMade);
  if (nominal === null) return null;
  let delay = nominal;
  if (policy.strategy === "exponential" && policy.jitter > 0 && delay > 0) {
    // random() is in [0, 1): spread the delay over [1 - jitter, 1 + jitter), then re-apply the cap.
    delay = Math.min(policy.cap_ms, delay * (1 + policy.jitter * (2 * random() - 1)));
  }
  delay = Math.max(0, Math.round(delay));
  if (retryAfterMs !== null && retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs > 0) {
    delay = Math.max(delay, Math.round(Math.min(retryAfterMs, RETRY_AFTER_CAP_MS)));
  }
  return delay;
}

/** "8 attempts: now, then after 5s, 5m, 30m, 2h, 5h, 10h, 10h". */
export function describeRetryPolicy(policy: RetryPolicy): string {
  const n = policy.max_attempts;
  if (n === 1) return "1 attempt: now, no retries";
  const delays: string[] = [];
  for (let made = 1; made < n; made++) delays.push(formatDuration(baseDelay(policy, made) ?? 0));
  const jitter =
    policy.strategy === "exponential" && policy.jitter > 0 ? ` (±${Math.round(policy.jitter * 100)}% jitter)` : "";
  return `${n} attempts: now, then after ${delays.join(", ")}${jitter}`;
}

const SCHEDULE_SHAPE = "exponential, linear, or a comma list of durations such as 30s,5m,1h";

/**
 * The CLI's `--retry-schedule`: "exponential" or "linear" (that strategy's defaults), or a
 * comma list of durations ("30s,5m,1h" → those delays; max attempts defaults to one more
 * than the number of delays). Throws a message naming the expected shape.
 */
export function parseRetrySchedule(text: string, maxAttempts?: number): RetryPolicy {
  const trimmed = text.trim();
  const keyword = trimmed.toLowerCase();
  let input: Record<string, unknown>;
  if (keyword === "exponential" || keyword === "linear") {
    input = { max_attempts: maxAttempts ?? DEFAULT_RETRY_POLICY.max_attempts, strategy: keyword };
  } else {
    const parts = trimmed.split(",").map((p) => p.trim());
    const delays: number[] = [];
    for (const part of parts) {
      try {
        delays.push(parseDuration(part));
      } catch {
        throw new Error(`expected a retry schedule: ${SCHEDULE_SHAPE}; got ${JSON.stringify(text)}`);
      }
    }
    input = { max_attempts: maxAttempts ?? delays.length + 1, strategy: "schedule", delays_ms: delays };
  }
  const parsed = retryPolicySchema.safeParse(input);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .map((i) => `${i.path.length > 0 ? `${i.path.map(String).join(".")}: ` : ""}${i.message}`)
      .join("; ");
    throw new Error(`invalid retry schedule ${JSON.stringify(text)}: ${detail}`);
  }
  return parsed.data;
}
