// The circuit breaker against per-webhook settings: a threshold of its own (or none, so a retry
// schedule keeps its timing), a new endpoint resetting the circuit, and the faces saying why
// deliveries behind an open circuit stay pending.
import type { Api } from "./helpers/api";
import { startApi } from "./helpers/api";
import { runCli, runJson } from "./helpers/cli";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { runDispatcher, waitUntil, type RunningDispatcher } from "./helpers/pipeline";
import { startReceiver, type Receiver } from "./helpers/receiver";

let t: TestDatabase;
let api: Api;
let rx: Receiver;
let dispatcher: RunningDispatcher | undefined;

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
  rx = await startReceiver((req) => ({ status: req.path.startsWith("/up") ? 200 : 500 }));
});
afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
  await rx.close();
});

const env = () => ({ DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" });

async function createWebhook(body: Record<string, unknown>): Promise<string> {
  const r = await api.call("POST", "/v1/webhooks", { body: { events: ["*"], ...body } });
  expect(r.statusCode).toBe(201);
  return (r.json() as { id: string }).id;
}

async function emit(n: number): Promise<void> {
  await t.sql`select webhooks.emit('invoice.paid', jsonb_build_object('n', n)) from generate_series(1, ${n}) n`;
}

const circuitOf = async (id: string) =>
  (await t.sql<{ circuit: string; consecutive_failures: number; next_probe_at: Date | null }[]>`
    select circuit, consecutive_failures, next_probe_at from webhooks.endpoint_health where subscription_id = ${id}`)[0];

interface Notice {
  webhook_id: string;
  circuit: string;
  next_probe_at: string | null;
  waiting: number;
  message: string;
}

it("keeps a retry schedule's timing when the webhook's breaker is off, while the default threshold parks", async () => {
  dispatcher = await runDispatcher(t.url); // WEBHOOKS_BREAKER_THRESHOLD 10, first probe after 30 s
  const schedule = { max_attempts: 3, strategy: "schedule", delays_ms: [1000, 2000] };
  const off = await createWebhook({ url: `${rx.url}/down-off`, retry: schedule, breaker_threshold: 0 });
  const dflt = await createWebhook({ url: `${rx.url}/down-default`, retry: schedule });
  await emit(12);

  await waitUntil(
    async () => (await t.sql`select 1 from webhooks.deliveries where subscription_id = ${off} and status = 'failed'`).length === 12,
    30000,
    "12 failed deliveries of the webhook without a breaker",
  );
  const attempts = await t.sql<{ delivery_id: string; attempt_number: number; started_at: Date }[]>`
    select a.delivery_id, a.attempt_number, a.started_at
      from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${off}
     order by a.delivery_id, a.attempt_number`;
  expect(attempts).toHaveLength(36);
  const byDelivery = new Map<string, number[]>();
  for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a.started_at.getTime()]);
  for (const starts of byDelivery.values()) {
    const [a1, a2, a3] = starts as [number, number, number];
    // At least the schedule's delay, and nowhere near a probe interval (30 s) late.
    expect(a2 - a1).toBeGreaterThanOrEqual(1000);
    expect(a3 - a2).toBeGreaterThanOrEqual(2000);
    expect(a3 - a2).toBeLessThan(15000);
  }
  // 36 failures in a row and the circuit never opened; the default webhook's did.
  expect(await circuitOf(off)).toMatchObject({ circuit: "closed", consecutive_failures: 36 });
  expect((await circuitOf(dflt))?.circuit).not.toBe("closed");
});

it("resets an open circuit when the url is fixed and sends what it parked before the next probe; replay and list say why they wait", async () => {
  // The dispatcher's threshold, not the webhook's: this is about the reset and the notices.
  dispatcher = await runDispatcher(t.url, { WEBHOOKS_BREAKER_THRESHOLD: "3" });
  const id = await createWebhook({ url: `${rx.url}/down`, retry: { max_attempts: 1, strategy: "exponential" } });
  await emit(3);
  await waitUntil(async () => (await circuitOf(id))?.circuit === "open", 20000, "the circuit to open after 3 failures");
  const failed = await t.sql<{ id: string }[]>`select id from webhooks.deliveries where subscription_id = ${id} and status = 'failed' order by created_at`;
  expect(failed).toHaveLength(3);

  // The CLI's replay names the open circuit and its next probe.
  const cli = await runCli(["replay", "--webhook", id, "--delivery", failed[0]?.id ?? "", "--yes", "--json"], { env: env() });
  expect(cli.code).toBe(0);
  const summary = JSON.parse(cli.stdout) as { queued: number; circuits: Notice[] };
  expect(summary.queued).toBe(1);
  expect(summary.circuits).toHaveLength(1);
  expect(summary.circuits[0]).toMatchObject({ webhook_id: id, circuit: "open" });
  expect(cli.stderr).toContain(`webhook ${id}: circuit is open`);
  expect(cli.stderr).toMatch(/next probe goes out at \d{4}-\d\d-\d\dT/);

  // So does the API's.
  const replay = await api.call("POST", `/v1/webhooks/${id}/replay`, { body: {} });
  expect(replay.statusCode).toBe(202);
  const replayed = replay.json() as { matched: number; queued: number; circuit: Notice | null };
  expect(replayed).toMatchObject({ matched: 2, queued: 2, circuit: { webhook_id: id, circuit: "open" } });
  const probeAt = new Date(replayed.circuit?.next_probe_at ?? 0);
  expect(probeAt.getTime()).toBeGreaterThan(0);

  await emit(2);
  await waitUntil(
    async () => (await t.sql`select 1 from webhooks.deliveries where subscription_id = ${id} and parked_at is not null`).length === 5,
    20000,
    "5 deliveries parked behind the circuit",
  );

  // Listing the webhook's deliveries says why five are pending, and until when.
  const list = await api.call("GET", `/v1/webhooks/${id}/deliveries`);
  expect(list.statusCode).toBe(200);
  const page = list.json() as { items: { status: string }[]; circuit: Notice | null };
  expect(page.items.filter((d) => d.status === "pending")).toHaveLength(5);
  expect(page.circuit).toMatchObject({ webhook_id: id, circuit: "open", waiting: 5 });
  expect(page.circuit?.message).toContain("5 deliveries wait (pending) until a probe succeeds");
  const cliList = await runCli(["deliveries", "list", "--webhook", id], { env: env() });
  expect(cliList.code).toBe(0);
  expect(cliList.stderr).toContain(`webhook ${id}: circuit is open`);
  expect(cliList.stderr).toContain("5 deliveries wait (pending)");

  // A new URL is a new endpoint: the circuit closes and the parked deliveries go at once.
  const patched = await api.call("PATCH", `/v1/webhooks/${id}`, { body: { url: `${rx.url}/up` } });
  expect(patched.statusCode).toBe(200);
  expect((patched.json() as { health: { circuit: string } }).health.circuit).toBe("closed");
  await waitUntil(
    async () => (await t.sql`select 1 from webhooks.deliveries where subscription_id = ${id} and status = 'succeeded'`).length === 5,
    25000,
    "the 5 parked deliveries to succeed",
  );
  const [first] = await t.sql<{ started: Date }[]>`
    select min(a.started_at) as started from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${id} and a.url = ${`${rx.url}/up`}`;
  expect(first?.started.getTime()).toBeLessThan(probeAt.getTime());
  expect(rx.requests.filter((r) => r.path === "/up")).toHaveLength(5);
  // Healthy again: nothing left to say.
  expect((await api.call("GET", `/v1/webhooks/${id}/deliveries`)).json()).toMatchObject({ circuit: null });
});

it("turning the breaker off closes an open circuit and sends what waited", async () => {
  dispatcher = await runDispatcher(t.url);
  const id = await createWebhook({ url: `${rx.url}/down`, retry: { max_attempts: 1, strategy: "exponential" }, breaker_threshold: 2 });
  await emit(2);
  await waitUntil(async () => (await circuitOf(id))?.circuit === "open", 20000, "the circuit to open");
  await emit(1);
  await waitUntil(async () => (await t.sql`select 1 from webhooks.deliveries where parked_at is not null`).length === 1, 20000, "a parked delivery");
  const r = await runCli(["webhooks", "update", id, "--breaker-threshold", "off"], { env: env() });
  expect(r.code).toBe(0);
  await waitUntil(async () => (await t.sql`select 1 from webhooks.deliveries where status = 'failed'`).length === 3, 20000, "the third delivery to be attempted");
  // The run of failures is kept (the auto-disable clock), only the circuit closed.
  expect(await circuitOf(id)).toMatchObject({ circuit: "closed", consecutive_failures: 3 });
});

it("takes a breaker threshold from the API and the CLI, and refuses hostile ones with a 4xx naming the field", async () => {
  const id = await createWebhook({ url: `${rx.url}/x`, breaker_threshold: 5 });
  for (const bad of [-1, 1001, 1.5, 9007199254740993, "5", "off", true, {}, [3]]) {
    const r = await api.call("PATCH", `/v1/webhooks/${id}`, { body: { breaker_threshold: bad } });
    expect(r.statusCode).toBe(400);
    expect(JSON.stringify(r.json())).toContain("breaker_threshold");
  }
  const raw = await api.call("PATCH", `/v1/webhooks/${id}`, { raw: '{"breaker_threshold": 1e400}' });
  expect(raw.statusCode).toBe(400);
  const [w] = await t.sql<{ breaker_threshold: number | null }[]>`select breaker_threshold from webhooks.subscriptions where id = ${id}`;
  expect(w?.breaker_threshold).toBe(5);

  const created = await runJson<{ id: string; breaker_threshold: number | null }>(
    ["webhooks", "create", "--url", `${rx.url}/cli`, "--events", "*", "--breaker-threshold", "off"],
    { env: env() },
  );
  expect(created.breaker_threshold).toBe(0);
  const shown = await runCli(["webhooks", "show", created.id], { env: env() });
  expect(shown.stdout).toContain("off (never opens)");
  expect((await runJson<{ breaker_threshold: number | null }>(["webhooks", "update", created.id, "--breaker-threshold", "default"], { env: env() })).breaker_threshold).toBeNull();
  for (const bad of ["-3", "1001", "007", "1e3", "9007199254740993", "10\r\n", "ten"]) {
    const r = await runCli(["webhooks", "update", created.id, "--breaker-threshold", bad], { env: env() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("--breaker-threshold");
  }
});
