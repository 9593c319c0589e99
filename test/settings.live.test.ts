// Live settings: a webhook changed through the API or the CLI while dispatchers run applies to
// the next attempt on every one of them, including deliveries already queued in their lanes.
import type { Api } from "./helpers/api";
import { startApi } from "./helpers/api";
import { runJson, spawnCli, type RunningCli } from "./helpers/cli";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";
import { startReceiver, type Receiver } from "./helpers/receiver";

let t: TestDatabase;
let api: Api;
let rx: Receiver;
let dispatchers: RunningDispatcher[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  api = await startApi({}, t);
});
afterAll(async () => {
  await api?.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  rx = await startReceiver();
});
afterEach(async () => {
  await Promise.all(dispatchers.map((d) => d.stop()));
  dispatchers = [];
  await rx.close();
});

// A breaker that never opens here: these tests are about settings, not about the circuit.
const start = async (n = 1) => {
  for (let i = 0; i < n; i++) dispatchers.push(await runDispatcher(t.url, { WEBHOOKS_BREAKER_THRESHOLD: "1000" }));
};

async function createWebhook(body: Record<string, unknown>): Promise<string> {
  const r = await api.call("POST", "/v1/webhooks", { body: { events: ["*"], ...body } });
  expect(r.statusCode).toBe(201);
  return (r.json() as { id: string }).id;
}

async function patch(id: string, body: Record<string, unknown>): Promise<void> {
  const r = await api.call("PATCH", `/v1/webhooks/${id}`, { body });
  expect(r.statusCode).toBe(200);
}

/** Emits one event whose data holds values JSON parsers and headers trip over. */
async function emit(n: number, extra: Record<string, unknown> = {}): Promise<void> {
  const data = { n, big: "9007199254740993", text: "line\r\nbreak \u2028 \ud83d\ude00", ...extra };
  await t.sql`select webhooks.emit('deal.won', ${t.sql.json(data)})`;
}

async function deliveryOf(n: number): Promise<{ status: string; attempts: number } | undefined> {
  const [d] = await t.sql<{ status: string; attempts: number }[]>`
    select d.status, d.attempts from webhooks.deliveries d join webhooks.outbox o on o.id = d.outbox_id
     where (o.data ->> 'n')::int = ${n}`;
  return d;
}

const finished = (n: number) =>
  waitUntil(async () => {
    const d = await deliveryOf(n);
    return d && (d.status === "succeeded" || d.status === "failed") ? d : null;
  }, 20000, `delivery of event ${n} to finish`);

/** The most requests open at the receiver at once, given when each arrived and how long it took. */
function peakConcurrency(spans: [number, number][]): number {
  const edges = spans.flatMap(([a, b]) => [[a, 1] as const, [b, -1] as const]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let open = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (open += d));
  return peak;
}

it("applies a retry policy PATCHed while the dispatcher runs to the next event's failures", async () => {
  rx.respond({ status: 500 });
  const id = await createWebhook({ url: rx.url, retry: { max_attempts: 1, strategy: "exponential" } });
  await start();
  await emit(1);
  expect(await finished(1)).toEqual({ status: "failed", attempts: 1 });

  await patch(id, { retry: { max_attempts: 3, strategy: "schedule", delays_ms: [200, 200] } });
  await emit(2);
  expect(await finished(2)).toEqual({ status: "failed", attempts: 3 });
  expect(rx.requests).toHaveLength(4);
});

it("sends deliveries already queued in a lane to the PATCHed url with the new headers, losing none", async () => {
  rx.respond({ status: 200, delayMs: 200 });
  const id = await createWebhook({ url: `${rx.url}/old?x=%20a`, headers: { "X-Version": "1" }, max_in_flight: 1 });
  await start();
  for (let n = 1; n <= 10; n++) await emit(n);
  await rx.waitFor(1);
  await patch(id, { url: `${rx.url}/new?x=%0D%0A`, headers: { "X-Version": "2", "X-Extra": "ünïcode ok" } });
  // With one request in flight at a time, at most the one open at the PATCH (and one started
  // before the dispatcher heard of it) went to the old URL.
  const atPatch = rx.requests.length;
  expect(await settled(t.sql, 10)).toEqual({ succeeded: 10 });

  expect(rx.requests).toHaveLength(10);
  expect(new Set(rx.requests.map((r) => r.headers["webhook-id"])).size).toBe(10);
  const later = rx.requests.slice(atPatch + 1);
  expect(later.length).toBeGreaterThanOrEqual(6);
  for (const r of later) {
    expect(r.path).toBe("/new?x=%0D%0A");
    expect(r.headers["x-version"]).toBe("2");
    expect(r.headers["x-extra"]).toBe("ünïcode ok");
  }
  // The attempt log says where each request went.
  const urls = await t.sql<{ url: string }[]>`select url from webhooks.attempts order by started_at, id`;
  expect(urls.slice(atPatch + 1).every((a) => a.url === `${rx.url}/new?x=%0D%0A`)).toBe(true);
});

it("opens more requests at once as soon as max_in_flight is raised, for deliveries already queued", async () => {
  const delayMs = 300;
  rx.respond({ status: 200, delayMs });
  const id = await createWebhook({ url: rx.url, max_in_flight: 1 });
  await start();
  for (let n = 1; n <= 24; n++) await emit(n);
  await rx.waitFor(1);
  await patch(id, { max_in_flight: 4 });
  const atPatch = rx.requests.length;
  expect(await settled(t.sql, 24)).toEqual({ succeeded: 24 });
  // Spans from arrival to the answer's end, as the receiver saw them.
  const after = rx.requests.slice(atPatch).map((r) => [r.receivedAt, r.response.closedAt ?? Infinity] as [number, number]);
  const peak = peakConcurrency(after);
  expect(peak).toBeGreaterThan(1);
  expect(peak).toBeLessThanOrEqual(4);
});

it("stops spacing queued deliveries once their rate limit is removed", async () => {
  const id = await createWebhook({ url: rx.url, rate_limit_per_s: 0.5 });
  await start();
  for (let n = 1; n <= 8; n++) await emit(n);
  await rx.waitFor(2);
  await patch(id, { rate_limit_per_s: null });
  const atPatch = rx.requests.length;
  expect(await settled(t.sql, 8)).toEqual({ succeeded: 8 });
  // Read from the attempt log: under the old limit each start came 2000 ms after the last.
  const starts = (await t.sql<{ started_at: Date }[]>`select started_at from webhooks.attempts order by started_at`).map((a) =>
    a.started_at.getTime(),
  );
  const gaps = starts.slice(atPatch + 1).map((s, i) => s - (starts[atPatch + i] as number));
  expect(gaps.length).toBeGreaterThanOrEqual(4);
  expect(Math.max(...gaps)).toBeLessThan(1000);
});

it("applies a retry policy and filter changed with the CLI on two running dispatchers", async () => {
  // Each event fails twice, then succeeds: a policy of one attempt fails it, one of three delivers it.
  const seen = new Map<string, number>();
  rx.respond((req) => {
    const key = String(req.headers["webhook-id"]);
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    return { status: n <= 2 ? 503 : 200 };
  });
  const id = await createWebhook({
    url: rx.url,
    retry: { max_attempts: 1, strategy: "exponential" },
    filter: { "data.stage": { $eq: "won" } },
  });
  await start(2);
  for (let n = 1; n <= 6; n++) await emit(n, { stage: "won" });
  for (let n = 1; n <= 6; n++) expect(await finished(n)).toEqual({ status: "failed", attempts: 1 });

  await runJson(["webhooks", "update", id, "--retry-schedule", "100ms,100ms", "--filter", '{"data.stage": {"$eq": "lost"}}'], {
    env: { DATABASE_URL: t.url },
  });
  const [w] = await t.sql<{ filter: unknown; retry: { max_attempts: number } }[]>`select filter, retry from webhooks.subscriptions where id = ${id}`;
  expect(w?.retry.max_attempts).toBe(3);
  expect(w?.filter).toEqual({ "data.stage": { $eq: "lost" } });

  for (let n = 7; n <= 12; n++) await emit(n, { stage: n % 2 === 0 ? "lost" : "won" });
  await settled(t.sql, 9);
  for (const n of [8, 10, 12]) expect(await deliveryOf(n)).toEqual({ status: "succeeded", attempts: 3 });
  for (const n of [7, 9, 11]) expect(await deliveryOf(n)).toBeUndefined();
});

it("applies a retry policy and url changed with the CLI in two running `pg-webhooks start` processes", async () => {
  rx.respond((req) => ({ status: req.path === "/up" ? 200 : 500 }));
  const env = {
    DATABASE_URL: t.url,
    WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
    WEBHOOKS_POLL_INTERVAL_MS: "200",
    WEBHOOKS_BREAKER_THRESHOLD: "1000",
  };
  const { id } = await runJson<{ id: string }>(["webhooks", "create", "--url", `${rx.url}/down`, "--events", "*", "--max-attempts", "1"], { env });
  const daemons: RunningCli[] = [spawnCli(["start", "--no-api"], { env }), spawnCli(["start", "--no-api"], { env })];
  try {
    await Promise.all(daemons.map((d) => d.waitForOutput("pg-webhooks running: dispatcher")));
    // One at a time, so both processes get a share (and each reads the old policy).
    for (let n = 1; n <= 8; n++) {
      await emit(n);
      expect(await finished(n)).toEqual({ status: "failed", attempts: 1 });
    }
    await runJson(["webhooks", "update", id, "--retry-schedule", "200ms,200ms"], { env });
    for (let n = 9; n <= 16; n++) await emit(n);
    for (let n = 9; n <= 16; n++) expect(await finished(n)).toEqual({ status: "failed", attempts: 3 });

    await runJson(["webhooks", "update", id, "--url", `${rx.url}/up`, "--max-attempts", "1"], { env });
    for (let n = 17; n <= 20; n++) await emit(n);
    for (let n = 17; n <= 20; n++) expect(await finished(n)).toEqual({ status: "succeeded", attempts: 1 });
    expect(rx.requests.filter((r) => r.path === "/up")).toHaveLength(4);
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
  }
});
