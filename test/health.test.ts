// Endpoint health with real receivers misbehaving: isolation from a hanging sibling,
// max_in_flight, rate limits, 410, Retry-After, the circuit breaker and auto-disable.
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";

let t: TestDatabase;
let rx: Receiver;
let dispatcher: RunningDispatcher | undefined;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  rx = await startReceiver();
});
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
  await rx.close();
});

async function emit(n: number, type = "invoice.paid"): Promise<void> {
  await t.sql`select webhooks.emit(${type}, jsonb_build_object('n', n)) from generate_series(1, ${n}) n`;
}

const onlyPath = (p: string) => rx.requests.filter((r) => r.path === p);

/** The most requests that were open at the receiver at once, given how long each took. */
function peakConcurrency(spans: [number, number][]): number {
  const edges = spans.flatMap(([a, b]) => [[a, 1] as const, [b, -1] as const]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (open += d));
  return peak;
}

it("delivers 600 events to a healthy webhook while its sibling hangs, before the sibling's first timeout", async () => {
  rx.respond((req) => (req.path === "/hang" ? { hang: true } : { status: 200 }));
  const hangTimeoutMs = 8000;
  const sick = await insertWebhook(t.sql, { url: `${rx.url}/hang`, timeout_ms: hangTimeoutMs, max_in_flight: 10 });
  await insertWebhook(t.sql, { url: `${rx.url}/ok` });
  dispatcher = await runDispatcher(t.url);
  const started = Date.now();
  await emit(600);
  await waitUntil(async () => onlyPath("/ok").length >= 600, 20000, "600 requests to the healthy webhook");
  const healthyDone = Date.now() - started;
  // Not one hanging request has timed out yet, so nothing of the sick webhook was recorded:
  // the healthy one never waited on it.
  const [sickAttempts] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id where d.subscription_id = ${sick.id}`;
  expect(healthyDone).toBeLessThan(hangTimeoutMs);
  expect(sickAttempts?.n).toBe(0);
  // The sick webhook has at most its cap of requests open, and they are still open.
  expect(onlyPath("/hang").length).toBeLessThanOrEqual(10);
  await waitUntil(
    async () => (await t.sql`select 1 from webhooks.deliveries where subscription_id <> ${sick.id} and status = 'succeeded' offset 599`).length > 0,
    10000,
    "600 succeeded deliveries",
  );
});

it("keeps at most max_in_flight requests open to one webhook", async () => {
  const delayMs = 150;
  rx.respond({ status: 200, delayMs });
  await insertWebhook(t.sql, { url: rx.url, max_in_flight: 3 });
  dispatcher = await runDispatcher(t.url);
  await emit(30);
  await settled(t.sql, 30);
  const peak = peakConcurrency(rx.requests.map((r) => [r.receivedAt, r.receivedAt + delayMs]));
  expect(rx.requests).toHaveLength(30);
  expect(peak).toBe(3);
});

it("spaces requests by rate_limit_per_s instead of failing them", async () => {
  await insertWebhook(t.sql, { url: rx.url, rate_limit_per_s: 5 });
  dispatcher = await runDispatcher(t.url);
  await emit(8);
  expect(await settled(t.sql, 8)).toEqual({ succeeded: 8 });
  expect(rx.requests).toHaveLength(8);
  // The attempt log's start times (the receiver's receipt times add the machine's scheduling
  // jitter). Unthrottled, the eight start within a few ms of each other.
  const starts = (await t.sql<{ ms: number }[]>`
    select (extract(epoch from started_at) * 1000)::float8 as ms from webhooks.attempts order by started_at`).map((r) => r.ms);
  expect(starts).toHaveLength(8);
  const gaps = starts.slice(1).map((x, i) => x - (starts[i] as number));
  expect(Math.min(...gaps)).toBeGreaterThanOrEqual(180);
  expect((starts[7] as number) - (starts[0] as number)).toBeGreaterThanOrEqual(7 * 200 - 10);
});

it("disables a webhook after exactly one 410, fails what it owed, and emits webhook.disabled", async () => {
  rx.respond((req) => (req.path === "/gone" ? { status: 410, body: "gone" } : { status: 200 }));
  const gone = await insertWebhook(t.sql, { url: `${rx.url}/gone`, events: ["invoice.*"] });
  await insertWebhook(t.sql, { url: `${rx.url}/alerts`, events: ["webhook.disabled"] });
  dispatcher = await runDispatcher(t.url);
  await emit(5);
  await waitUntil(async () => onlyPath("/alerts").length >= 1, 10000, "the webhook.disabled event");
  await settled(t.sql, 6);
  expect(onlyPath("/gone")).toHaveLength(1);
  const [w] = await t.sql`select is_active, disabled_reason, disabled_at from webhooks.subscriptions where id = ${gone.id}`;
  expect(w).toMatchObject({ is_active: false, disabled_reason: expect.stringContaining("410"), disabled_at: expect.any(Date) });
  const owed = await t.sql`select status, attempts from webhooks.deliveries where subscription_id = ${gone.id}`;
  expect(owed).toHaveLength(5);
  expect(owed.every((d) => d.status === "failed")).toBe(true);
  expect(owed.reduce((n, d) => n + Number(d.attempts), 0)).toBe(1);
  const alert = JSON.parse(onlyPath("/alerts")[0]?.body ?? "{}");
  expect(alert).toMatchObject({ type: "webhook.disabled", data: { webhook_id: gone.id, reason: expect.stringContaining("410") } });
});

it("waits at least Retry-After: 7 before the next attempt even when the schedule says 1 s", async () => {
  rx.respond((_req, i) => (i === 0 ? { status: 429, headers: { "retry-after": "7" } } : { status: 200 }));
  await insertWebhook(t.sql, { url: rx.url, retry: { max_attempts: 3, strategy: "schedule", delays_ms: [1000, 1000] } });
  dispatcher = await runDispatcher(t.url);
  await emit(1);
  expect(await settled(t.sql, 1, 20000)).toEqual({ succeeded: 1 });
  const [a, b] = rx.requests;
  expect(b!.receivedAt - a!.receivedAt).toBeGreaterThanOrEqual(7000);
});

it("opens the circuit after a run of failures, probes at growing intervals, and closes on success", async () => {
  let healthy = false;
  rx.respond(() => (healthy ? { status: 200 } : { status: 500 }));
  const w = await insertWebhook(t.sql, { url: rx.url, retry: { max_attempts: 10, strategy: "schedule", delays_ms: [100] } });
  dispatcher = await runDispatcher(t.url, {
    WEBHOOKS_BREAKER_THRESHOLD: "3",
    WEBHOOKS_BREAKER_PROBE_MIN_MS: "400",
    WEBHOOKS_BREAKER_PROBE_MAX_MS: "1600",
    WEBHOOKS_POLL_INTERVAL_MS: "50",
  });
  await emit(10);
  const health = async () =>
    (await t.sql`select circuit, consecutive_failures from webhooks.endpoint_health where subscription_id = ${w.id}`)[0];
  await waitUntil(async () => (await health())?.circuit === "open", 10000, "the circuit to open");
  // Three failures opened it; then only probes go out, each a single request, further apart.
  await waitUntil(async () => rx.requests.length >= 3 + 3, 15000, "three probes");
  const probeTimes = rx.requests.slice(2).map((r) => r.receivedAt);
  const gaps = probeTimes.slice(1).map((x, i) => x - (probeTimes[i] as number));
  expect(gaps[0]).toBeGreaterThanOrEqual(350);
  expect(gaps[2]).toBeGreaterThan(gaps[0]! * 1.5);
  const parked = await t.sql`select attempts from webhooks.deliveries where parked_at is not null`;
  expect(parked.length).toBeGreaterThanOrEqual(5);
  const [open] = await t.sql`select count(*)::int as n from webhooks.deliveries where status in ('pending', 'retrying')`;
  expect(open?.n).toBe(10);
  // The endpoint recovers: the next probe succeeds, the circuit closes, the rest flow.
  const before = rx.requests.length;
  healthy = true;
  expect(await settled(t.sql, 10, 15000)).toEqual({ succeeded: 10 });
  expect(await health()).toMatchObject({ circuit: "closed", consecutive_failures: 0 });
  const delivered = new Set(rx.requests.filter((r) => r.receivedAt >= rx.requests[before]!.receivedAt).map((r) => JSON.parse(r.body).data.n as number));
  expect(delivered.size).toBe(10);
  // Waiting did not use up attempts: nobody came near max_attempts.
  const [most] = await t.sql`select max(attempts)::int as n from webhooks.deliveries`;
  expect(most?.n).toBeLessThan(10);
});

it("disables a webhook whose every attempt has failed for disable_after_s, with a reason", async () => {
  rx.respond({ status: 503 });
  const w = await insertWebhook(t.sql, {
    url: rx.url,
    disable_after_s: 1,
    retry: { max_attempts: 20, strategy: "schedule", delays_ms: [300] },
  });
  dispatcher = await runDispatcher(t.url);
  await emit(1);
  const row = await waitUntil(
    async () => (await t.sql`select is_active, disabled_reason from webhooks.subscriptions where id = ${w.id} and not is_active`)[0],
    15000,
    "the webhook to be disabled",
  );
  expect(row.disabled_reason).toMatch(/every attempt has failed since/);
  // Not before it had been failing for a second: the failures span at least disable_after_s.
  expect(rx.requests.length).toBeGreaterThanOrEqual(2);
  const first = rx.requests[0]!.receivedAt;
  const last = rx.requests[rx.requests.length - 1]!.receivedAt;
  expect(last - first).toBeGreaterThanOrEqual(950);
  const [event] = await t.sql`select type, data from webhooks.outbox where type = 'webhook.disabled'`;
  expect(event?.data).toMatchObject({ webhook_id: w.id });
  expect(await settled(t.sql, 1)).toEqual({ failed: 1 });
});
