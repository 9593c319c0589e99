// A database outage long enough for graphile-worker's own back-offs to grow (its LISTEN
// reconnect waits up to a minute): the real daemon must still stop on SIGTERM/SIGINT within
// the grace period, losing nothing committed, and once Postgres is back, a retry queued as a
// job before the outage must run within seconds.
import { appendFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type Connection } from "../src/db/connection";
import { spawnCli, type RunningCli } from "./helpers/cli";
import { startPrivatePostgres, type PrivatePostgres } from "./helpers/private-pg";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, waitUntil } from "./helpers/pipeline";

/**
 * Long enough for graphile-worker's back-offs to grow past the "few seconds" allowed: its
 * LISTEN reconnect waits 136, 370, 1005, 2730, 7421, 20172, 54832 ms, and a job fetch that
 * meets 57P03 waits 3 s × 1.5^n (±50 %).
 */
const OUTAGE_MS = 45_000;
const GRACE_MS = 4000;
/** Refusals last longer: the fetch back-off grows by 1.5× a step, so 90 s puts it at 30 s or more. */
const REFUSING_MS = 90_000;
/** What "within the grace period plus a few seconds" allows. */
const STOP_ALLOWANCE_MS = GRACE_MS + 5000;

let pg: PrivatePostgres;
let rx: Receiver;
let daemon: RunningCli | undefined;
let pgDown = false;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startDaemon(extra: Record<string, string> = {}): RunningCli {
  return spawnCli(["start", "--no-api", "--no-migrate", "--json"], {
    env: {
      DATABASE_URL: pg.url,
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOKS_SHUTDOWN_GRACE_MS: String(GRACE_MS),
      LOG_LEVEL: "info",
      ...extra,
    },
  });
}

async function withSql<T>(fn: (c: Connection) => Promise<T>): Promise<T> {
  const c = connect(pg.url, { max: 1 });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

const tail = (d: RunningCli | undefined) => {
  const o = d?.output();
  return o ? `${o.stdout}${o.stderr}`.slice(-6000) : "";
};

beforeAll(async () => {
  pg = await startPrivatePostgres();
  await withSql(async ({ sql }) => {
    await sql`create table public.items (id serial primary key, n int not null)`;
    await sql`select webhooks.track_table('public.items')`;
  });
  rx = await startReceiver({ status: 200 });
}, 60_000);
afterEach(async () => {
  await daemon?.stop("SIGKILL");
  daemon = undefined;
  if (pgDown) await startPg();
});

async function stopPg(): Promise<void> {
  await pg.stop("fast");
  pgDown = true;
}
async function startPg(): Promise<void> {
  await pg.start();
  pgDown = false;
}

/**
 * The outage as clients see it during a failover: the server runs but refuses every
 * connection with SQLSTATE 57P03 ("not accepting connections"), here a standby with hot
 * standby off waiting for WAL that never comes. graphile-worker retries 57P03 with its own
 * back-off (3 s growing to 120 s), unlike a refused TCP connection.
 */
async function refuseConnections(ms: number): Promise<void> {
  await stopPg();
  appendFileSync(join(pg.dataDir, "postgresql.conf"), "hot_standby = off\n");
  writeFileSync(join(pg.dataDir, "standby.signal"), "");
  await startPg();
  pgDown = true;
  await sleep(ms);
  await pg.stop("fast");
  rmSync(join(pg.dataDir, "standby.signal"));
  appendFileSync(join(pg.dataDir, "postgresql.conf"), "hot_standby = on\n");
  await startPg();
}
afterAll(async () => {
  await rx?.close();
  await pg?.destroy();
});

async function reset(): Promise<void> {
  await withSql(async ({ sql }) => {
    // items first: truncating a tracked table emits items.truncated, which the outbox truncate then clears.
    await sql`truncate public.items`;
    await sql`truncate webhooks.deliveries, webhooks.attempts, webhooks.subscriptions, webhooks.outbox cascade`;
    await sql`delete from graphile_worker._private_jobs`;
  });
  rx.requests.length = 0;
}

it.each(["SIGTERM", "SIGINT"] as const)(
  "stops on %s within the grace period after a long database outage, and loses no committed event",
  async (signal) => {
    await reset();
    // Slow answers, so some requests are in flight when the database goes away.
    rx.respond({ status: 200, delayMs: 1500 });
    await withSql(({ sql }) =>
      insertWebhook(sql, { url: `${rx.url}/items`, events: ["items.created"], retry: { max_attempts: 5, strategy: "schedule", delays_ms: [500] } }),
    );
    daemon = startDaemon();
    await daemon.waitForOutput("dispatcher started");
    await withSql(({ sql }) => sql`insert into items (n) select generate_series(1, 20)`);
    await rx.waitFor(1, 15_000);

    await stopPg();
    await sleep(OUTAGE_MS);
    const t0 = Date.now();
    const code = await daemon.stop(signal, 60_000);
    const took = Date.now() - t0;
    console.log(`${signal} after a ${OUTAGE_MS} ms outage: exited ${String(code)} after ${took} ms`);
    if (took > STOP_ALLOWANCE_MS) {
      throw new Error(`exited ${took} ms after ${signal} (allowed ${STOP_ALLOWANCE_MS}); log:\n${tail(daemon)}`);
    }
    expect(code).toBe(0);
    daemon = undefined;

    // Nothing committed is lost: a new daemon sends every event (again, where the result
    // could not be recorded).
    await startPg();
    rx.respond({ status: 200 });
    daemon = startDaemon();
    await withSql(async ({ sql }) => {
      const [outbox] = await sql<{ n: number }[]>`select count(*)::int as n from webhooks.outbox`;
      expect(outbox?.n).toBe(20);
      await waitUntil(
        async () => {
          const open = await sql`select 1 from webhooks.deliveries where status <> 'succeeded' union all
                                 select 1 from webhooks.outbox where dispatched_at is null limit 1`;
          return open.length === 0;
        },
        30_000,
        "every delivery succeeded after the restart",
      ).catch((e: Error) => {
        throw new Error(`${e.message}; log:\n${tail(daemon)}`);
      });
      const [deliveries] = await sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries`;
      expect(deliveries?.n).toBe(20);
    });
    const received = new Set(rx.requests.map((r) => String(r.headers["webhook-id"])));
    expect(received.size).toBe(20);
  },
  180_000,
);

it.each(["down", "refusing connections (57P03)"] as const)(
  "runs a retry queued before an outage (%s) within seconds of the database coming back",
  async (kind) => {
    await reset();
    // The first attempt fails; the retry is a graphile-worker job due 5 s later, during the outage.
    rx.respond((_req, i) => ({ status: i === 0 ? 500 : 200 }));
    await withSql(({ sql }) =>
      insertWebhook(sql, { url: `${rx.url}/items`, events: ["items.created"], retry: { max_attempts: 3, strategy: "schedule", delays_ms: [5000] } }),
    );
    // One graphile-worker worker, so no second worker happens to wake up early and hide the
    // back-off of the first.
    daemon = startDaemon({ WEBHOOKS_CONCURRENCY: "1" });
    await daemon.waitForOutput("dispatcher started");
    await withSql(({ sql }) => sql`insert into items (n) values (1)`);
    await withSql(({ sql }) =>
      waitUntil(async () => (await sql`select 1 from webhooks.deliveries where status = 'retrying' and attempts = 1`).length > 0, 15_000, "the first attempt recorded"),
    );
    if (kind === "down") {
      await stopPg();
      await sleep(OUTAGE_MS);
      await startPg();
    } else {
      await refuseConnections(REFUSING_MS);
    }
    const back = Date.now();
    await rx.waitFor(2, 90_000).catch((e: Error) => {
      throw new Error(`${e.message}; log:\n${tail(daemon)}`);
    });
    const after = (rx.requests[1]?.receivedAt ?? Infinity) - back;
    console.log(`retry sent ${after} ms after Postgres came back from a ${OUTAGE_MS} ms outage (${kind})`);
    if (after > 3000) throw new Error(`the retry went out ${after} ms after the database came back; log:\n${tail(daemon)}`);
    await withSql(({ sql }) =>
      waitUntil(async () => (await sql`select 1 from webhooks.deliveries where status = 'succeeded'`).length > 0, 15_000, "the retry recorded"),
    );
  },
  180_000,
);
