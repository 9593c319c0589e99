// Fault injection at the receiver: every way an endpoint can misbehave ends in a recorded
// attempt and a delivery that follows its retry policy. Asserts only what users see: rows in
// webhooks.deliveries and webhooks.attempts, and the requests the receiver got.
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { refusedUrl, replies, startReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";
import type { RetryPolicy } from "../src/model/retry-policy";

let t: TestDatabase;
let rx: Receiver;
let dispatcher: RunningDispatcher;

/** Two attempts, 500 ms apart: enough to see a retry, quick enough for a test. */
const TWO_TRIES: RetryPolicy = { max_attempts: 2, strategy: "schedule", delays_ms: [500] };
const ONE_TRY: RetryPolicy = { max_attempts: 1, strategy: "schedule", delays_ms: [100] };

interface AttemptRow {
  attempt_number: number;
  url: string;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  duration_ms: number;
  error: string | null;
}

interface DeliveryRow {
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
}

async function attempts(): Promise<AttemptRow[]> {
  return t.sql<AttemptRow[]>`
    select attempt_number, url, response_status, response_headers, response_body, duration_ms, error
      from webhooks.attempts order by attempt_number`;
}

async function deliveries(): Promise<DeliveryRow[]> {
  return t.sql<DeliveryRow[]>`select status, attempts, last_status_code, last_error from webhooks.deliveries`;
}

async function onlyDelivery(): Promise<DeliveryRow> {
  const rows = await deliveries();
  expect(rows).toHaveLength(1);
  return rows[0] as DeliveryRow;
}

async function emit(): Promise<void> {
  await t.sql`select webhooks.emit('invoice.paid', '{"id": 1}'::jsonb)`;
}

/** Lets a late, unexpected request arrive before counting. */
const quiet = (ms = 400) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver();
  dispatcher = await runDispatcher(t.url);
});
afterAll(async () => {
  await dispatcher?.stop();
  await rx?.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  rx.requests.length = 0;
  rx.respond({ status: 200 });
});

it("records a 500 on each attempt and fails the delivery after its policy's attempts, via retrying", async () => {
  rx.respond(replies.status(500, "internal error"));
  await insertWebhook(t.sql, { url: `${rx.url}/hook`, retry: TWO_TRIES });
  await emit();
  // Between the attempts the delivery is visibly waiting for its retry.
  await waitUntil(async () => (await deliveries())[0]?.status === "retrying", 10000, "a retrying delivery");
  expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
  await quiet();
  expect(rx.requests).toHaveLength(2);
  expect(new Set(rx.requests.map((r) => r.headers["webhook-id"])).size).toBe(1);
  expect(await onlyDelivery()).toMatchObject({ status: "failed", attempts: 2, last_status_code: 500 });
  expect(await attempts()).toEqual(
    [1, 2].map((n) =>
      expect.objectContaining({ attempt_number: n, response_status: 500, response_body: "internal error", error: null }),
    ),
  );
});

it("gives up on a receiver that never answers at the webhook's timeout, and says so", async () => {
  rx.respond(replies.hang());
  await insertWebhook(t.sql, { url: rx.url, timeout_ms: 300, retry: ONE_TRY });
  await emit();
  expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
  const [a] = await attempts();
  expect(a).toMatchObject({ response_status: null, error: expect.stringMatching(/time(d)? ?out/i) });
  expect(a?.duration_ms).toBeGreaterThanOrEqual(290);
  expect(a?.duration_ms).toBeLessThan(3000);
  // The dispatcher hung up on the receiver, not the other way round.
  const [req] = rx.requests;
  await req?.response.closed;
  expect(req?.response.completed).toBe(false);
  expect((req?.response.closedAt ?? 0) - (req?.receivedAt ?? 0)).toBeLessThan(3000);
});

it("waits for a slow answer that comes within the timeout", async () => {
  rx.respond(replies.slow(600, 202));
  await insertWebhook(t.sql, { url: rx.url, timeout_ms: 3000, retry: ONE_TRY });
  await emit();
  expect(await settled(t.sql, 1)).toEqual({ succeeded: 1 });
  const [a] = await attempts();
  expect(a).toMatchObject({ response_status: 202, error: null });
  expect(a?.duration_ms).toBeGreaterThanOrEqual(590);
  expect(rx.requests).toHaveLength(1);
});

it("records a refused connection as an error without a status, and retries it", async () => {
  const url = await refusedUrl("/hook");
  await insertWebhook(t.sql, { url, retry: TWO_TRIES });
  await emit();
  expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
  const rows = await attempts();
  expect(rows).toHaveLength(2);
  for (const a of rows) {
    expect(a).toMatchObject({ url, response_status: null, response_headers: null, response_body: null });
    expect(a.error).toMatch(/ECONNREFUSED|connection refused/i);
  }
  expect(await onlyDelivery()).toMatchObject({ status: "failed", attempts: 2, last_status_code: null });
});

it.each([
  ["before the response", replies.reset()],
  ["mid-response, after the headers and part of the body", replies.resetMidBody("{\"ok\": tr")],
])("records a connection reset %s as a failed attempt and retries the delivery", async (_when, fault) => {
  rx.respond((_req, i) => (i === 0 ? fault : { status: 204, body: "" }));
  await insertWebhook(t.sql, { url: rx.url, retry: TWO_TRIES });
  await emit();
  expect(await settled(t.sql, 1)).toEqual({ succeeded: 1 });
  const [first, second] = await attempts();
  expect(first?.error).toEqual(expect.any(String));
  expect(first?.error).not.toBe("");
  expect(second).toMatchObject({ response_status: 204, error: null });
  expect(await onlyDelivery()).toMatchObject({ status: "succeeded", attempts: 2 });
  expect(rx.requests).toHaveLength(2);
  expect(rx.requests[0]?.headers["webhook-id"]).toBe(rx.requests[1]?.headers["webhook-id"]);
});

it.each([
  [200, "succeeded"],
  [500, "failed"],
] as const)("stops reading a huge streamed body (status %i) early and keeps 5,000 characters; the delivery %s", async (status, outcome) => {
  const total = 50 * 1024 * 1024;
  rx.respond(replies.stream(total, status));
  await insertWebhook(t.sql, { url: rx.url, retry: ONE_TRY });
  await emit();
  expect(await settled(t.sql, 1)).toEqual({ [outcome]: 1 });
  const [a] = await attempts();
  expect(a).toMatchObject({ response_status: status, error: null });
  expect(a?.response_body?.length).toBeLessThanOrEqual(5000);
  expect(a?.response_body).toMatch(/^a+$/);
  expect(a?.duration_ms).toBeLessThan(5000);
  const [req] = rx.requests;
  await req?.response.closed;
  expect(req?.response.completed).toBe(false);
  // Socket buffers take a few MB before backpressure stops the writer; the 50 MB never go.
  expect(req?.response.bytesWritten).toBeLessThan(total / 4);
});

it.each([302, 307] as const)("does not follow a %i: the attempt fails with the Location recorded and the target gets nothing", async (status) => {
  rx.respond((req) => (req.path === "/moved" ? replies.redirect(status, `${rx.url}/target`) : { status: 200 }));
  await insertWebhook(t.sql, { url: `${rx.url}/moved`, retry: ONE_TRY });
  await emit();
  expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
  const [a] = await attempts();
  expect(a).toMatchObject({ response_status: status, error: null });
  expect(a?.response_headers?.location).toBe(`${rx.url}/target`);
  await quiet();
  expect(rx.requests.map((r) => r.path)).toEqual(["/moved"]);
  expect(await onlyDelivery()).toMatchObject({ status: "failed", attempts: 1, last_status_code: status });
});

it("waits at least as long as a 429's Retry-After before the next attempt", async () => {
  rx.respond((_req, i) => (i === 0 ? replies.retryAfter(429, "2") : { status: 200 }));
  await insertWebhook(t.sql, { url: rx.url, retry: { max_attempts: 2, strategy: "schedule", delays_ms: [100] } });
  await emit();
  expect(await settled(t.sql, 1, 15000)).toEqual({ succeeded: 1 });
  const [first, second] = rx.requests;
  expect((second?.receivedAt ?? 0) - (first?.receivedAt ?? 0)).toBeGreaterThanOrEqual(1900);
  const rows = await attempts();
  expect(rows.map((a) => a.response_status)).toEqual([429, 200]);
  expect(rows[0]?.response_headers?.["retry-after"]).toBe("2");
});

it("refuses a hostname that resolves to a private address when private targets are not allowed", async () => {
  await dispatcher.stop();
  const strict = await runDispatcher(t.url, { WEBHOOKS_ALLOW_PRIVATE_TARGETS: "false" });
  try {
    await insertWebhook(t.sql, { url: `http://localhost:${rx.port}/hook`, retry: ONE_TRY });
    await emit();
    expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
    const [a] = await attempts();
    expect(a).toMatchObject({ response_status: null, response_body: null });
    expect(a?.error).toMatch(/localhost .*private address/);
    expect(a?.error).toMatch(/WEBHOOKS_ALLOW_PRIVATE_TARGETS=true/);
    await quiet();
    expect(rx.requests).toHaveLength(0);
  } finally {
    await strict.stop();
    dispatcher = await runDispatcher(t.url);
  }
});
