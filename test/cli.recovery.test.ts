// The operator's recovery story, end to end with the real binary: an endpoint is down, its
// deliveries fail, the operator finds them, the endpoint recovers, one replay delivers each
// exactly once, and a second replay sends nothing.
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { runCli, runJson, spawnCli, type RunningCli } from "./helpers/cli";

let t: TestDatabase;
let rx: Receiver;
let dispatcher: RunningCli | undefined;
let env: Record<string, string>;

const json = <T = Record<string, unknown>>(args: string[]) => runJson<T>(args, { env });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last saw ${JSON.stringify(v)}`);
    await sleep(100);
  }
}

const statusCounts = async () => {
  const rows = await t.sql<{ status: string; n: number }[]>`select status, count(*)::int as n from webhooks.deliveries group by status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n])) as Record<string, number>;
};

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver({ status: 503, body: "maintenance" });
  env = { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true", WEBHOOKS_POLL_INTERVAL_MS: "200" };
  await t.sql`create table public.clients (id serial primary key, name text)`;
});
afterAll(async () => {
  await dispatcher?.stop("SIGKILL");
  await rx?.close();
  await t?.close();
});

it("replays failed deliveries exactly once after the receiver recovers, and a second replay sends nothing", async () => {
  await json(["track", "clients"]);
  const { id: webhook } = await json<{ id: string }>([
    "webhooks", "create", "--url", `${rx.url}/hook`, "--events", "clients.*", "--retry-schedule", "200ms", "--max-attempts", "2",
  ]);

  dispatcher = spawnCli(["start", "--no-api"], { env });
  await dispatcher.waitForOutput("pg-webhooks running: dispatcher");

  // The endpoint is down: every delivery fails after its two attempts.
  await t.sql`insert into clients (name) select 'client ' || i from generate_series(1, 3) i`;
  await until("3 failed deliveries", statusCounts, (c) => c.failed === 3);
  expect(rx.requests).toHaveLength(6);

  const failed = await json<{ id: string; event_id: string; status: string; last_status_code: number }[]>([
    "deliveries", "list", "--status", "failed", "--webhook", webhook, "--since", "1h",
  ]);
  expect(failed).toHaveLength(3);
  expect(failed.every((d) => d.status === "failed" && d.last_status_code === 503)).toBe(true);

  const status = await json<{ deliveries: { failed: number }; dispatchers: unknown[] }>(["status"]);
  expect(status.deliveries.failed).toBe(3);
  expect(status.dispatchers).toHaveLength(1);

  // The endpoint recovers; replaying at 2 per second takes at least a second for three.
  rx.respond({ status: 200 });
  rx.requests.length = 0;
  const replay = await json<{ matched: number; queued: number; skipped: number; duration_ms: number }>([
    "replay", "--status", "failed", "--webhook", webhook, "--rate", "2", "--yes",
  ]);
  expect(replay).toMatchObject({ matched: 3, queued: 3, skipped: 0 });
  expect(replay.duration_ms).toBeGreaterThanOrEqual(900);
  await until("3 succeeded deliveries", statusCounts, (c) => c.succeeded === 3);
  await sleep(500);
  // Exactly once each, with the event ids the failed attempts carried (receivers dedupe on them).
  expect(rx.requests).toHaveLength(3);
  expect(rx.requests.map((r) => r.headers["webhook-id"]).sort()).toEqual(failed.map((d) => d.event_id).sort());

  const again = await json(["replay", "--status", "failed", "--yes"]);
  expect(again).toMatchObject({ matched: 0, queued: 0 });
  await sleep(700);
  expect(rx.requests).toHaveLength(3);

  // SIGTERM stops the dispatcher gracefully with exit code 0.
  expect(await dispatcher.stop("SIGTERM")).toBe(0);
  const after = await runCli(["status", "--json"], { env });
  expect(JSON.parse(after.stdout)).toMatchObject({ dispatchers: [] });
});
