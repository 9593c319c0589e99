// Postgres restarts under a running dispatcher: on a private cluster, a burst of events is
// written while the server is restarted mid-burst; every committed event must still reach
// the receiver, and the dispatcher must get through it by itself (no restart, no crash).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { Pool } from "pg";
import { connect, type Connection, type Sql } from "../src/db/connection";
import { startPrivatePostgres, type PrivatePostgres, type StopMode } from "./helpers/private-pg";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, waitUntil } from "./helpers/pipeline";

const BIN = join(__dirname, "..", "bin", "pg-webhooks.js");

const EVENTS = 2000;
const PER_TRANSACTION = 10;
/**
 * Generous: the restart takes under a second, retries are 500 ms apart, a dead job's claim
 * lapses after ~10 s, and when nothing goes wrong everything arrives within ~5 s.
 */
const DELIVERY_WAIT_MS = 25_000;

let pg: PrivatePostgres;
let rx: Receiver;
let dispatcher: ChildProcess | undefined;
let dispatcherLog = "";

/** The real daemon (built by `npm test` before jest runs), so a crash is a process exit. */
function startDispatcher(): ChildProcess {
  dispatcherLog = "";
  const child = spawn(process.execPath, [BIN, "start", "--no-api", "--no-migrate", "--json"], {
    env: {
      PATH: process.env.PATH ?? "",
      DATABASE_URL: pg.url,
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
      WEBHOOKS_POLL_INTERVAL_MS: "200",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const keep = (b: Buffer) => {
    dispatcherLog = (dispatcherLog + b.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return child;
}

async function stopDispatcher(): Promise<void> {
  const c = dispatcher;
  dispatcher = undefined;
  if (!c || c.exitCode !== null) return;
  const gone = new Promise((r) => c.once("exit", r));
  c.kill("SIGTERM");
  const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
  await gone;
  clearTimeout(t);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A short-lived postgres.js connection for setup and checks, closed while the server restarts. */
async function withSql<T>(fn: (c: Connection) => Promise<T>): Promise<T> {
  const c = connect(pg.url, { max: 1 });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

beforeAll(async () => {
  pg = await startPrivatePostgres();
  await withSql(async ({ sql }) => {
    await sql`create table public.items (id serial primary key, seq int not null unique)`;
    await sql`select webhooks.track_table('public.items')`;
  });
  rx = await startReceiver({ status: 200, delayMs: 2 });
}, 60_000);
afterEach(stopDispatcher);
afterAll(async () => {
  await rx?.close();
  await pg?.destroy();
});

interface Burst {
  committed: Set<number>;
  failedInserts: number;
  lastInsertError: string | null;
  beforeRestart: number;
  afterRestart: number;
  downMs: number;
}

/**
 * The application: inserts `total` rows, PER_TRANSACTION per committed transaction, and
 * restarts Postgres once half are in (the last quarter waits for the restart to finish). It writes with node-postgres, so that during the restart
 * the dispatcher is the only postgres.js user in this process (postgres.js 3.4.9 can throw from a
 * timer when a connection dies: porsager/postgres#1154). A failed transaction is retried
 * until it commits; a unique violation on the retry means the first try had committed.
 */
async function burstWithRestart(total: number, mode: StopMode): Promise<Burst> {
  const writer = new Pool({ connectionString: pg.url, max: 1, connectionTimeoutMillis: 2000 });
  writer.on("error", () => {}); // an idle client's socket dies with the server; the next query reconnects
  const b: Burst = { committed: new Set(), failedInserts: 0, lastInsertError: null, beforeRestart: 0, afterRestart: 0, downMs: 0 };
  let restart: Promise<void> | undefined;
  let restarted = false;
  let restartFailed: unknown = null;
  try {
    for (let next = 0; next < total; ) {
      if (restartFailed !== null) throw restartFailed;
      // Writes go on during the restart, but the last quarter waits for it to finish, so
      // that some always land after it however slow the machine is.
      if (restart && !restarted && next >= (total * 3) / 4) await restart;
      const seqs = Array.from({ length: Math.min(PER_TRANSACTION, total - next) }, (_, i) => next + i);
      try {
        await writer.query("insert into items (seq) select unnest($1::int[])", [seqs]);
      } catch (e) {
        if ((e as { code?: string }).code !== "23505") {
          b.failedInserts++;
          b.lastInsertError = e instanceof Error ? e.message : String(e);
          await sleep(50);
          continue;
        }
      }
      for (const s of seqs) b.committed.add(s);
      if (restarted) b.afterRestart += seqs.length;
      else if (!restart) b.beforeRestart += seqs.length;
      next += seqs.length;
      if (!restart && next >= total / 2) {
        const t0 = Date.now();
        restart = pg.restart(mode).then(
          () => {
            b.downMs = Date.now() - t0;
            restarted = true;
          },
          (e: unknown) => {
            restartFailed = e;
          },
        );
      }
    }
    await restart;
    if (restartFailed !== null) throw restartFailed;
  } finally {
    await writer.end();
  }
  return b;
}

/** graphile-worker's queue, only to say in a failure message where work is stuck. */
async function queueState(sql: Sql): Promise<string> {
  const jobs = await sql`
    select t.identifier as task, count(*)::int as n, count(j.locked_by)::int as locked, min(j.locked_at) as oldest_lock,
           max(j.attempts) as max_attempts, max(j.last_error) as last_error
      from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     group by t.identifier`;
  return JSON.stringify(jobs);
}

interface Progress {
  received: number;
  deliveries: Record<string, number>;
  undispatched: number;
}

async function progress(sql: Sql): Promise<Progress> {
  const rows = await sql<{ status: string; n: number }[]>`select status, count(*)::int as n from webhooks.deliveries group by status`;
  const [o] = await sql<{ n: number }[]>`select count(*)::int as n from webhooks.outbox where dispatched_at is null`;
  return {
    received: new Set(rx.requests.map((r) => String(r.headers["webhook-id"]))).size,
    deliveries: Object.fromEntries(rows.map((r) => [r.status, r.n])),
    undispatched: o?.n ?? 0,
  };
}

// The dispatcher is the real binary: an error it cannot handle ends the process, which the
// test reports with the end of its log.
it.each(["fast", "immediate"] as const)(
  "delivers every committed event when Postgres restarts (%s) mid-burst, the dispatcher recovering by itself",
  async (mode) => {
    await withSql(async ({ sql }) => {
      // items first: truncating a tracked table emits items.truncated, which the outbox truncate then clears.
      await sql`truncate public.items`;
      await sql`truncate webhooks.deliveries, webhooks.attempts, webhooks.subscriptions, webhooks.outbox cascade`;
      await insertWebhook(sql, {
        url: `${rx.url}/items`,
        events: ["items.created"],
        // Short, so that a delivery claimed by a job that then died is claimable again soon
        // (today a claim is leased for about timeout_ms × 5 + 5 s).
        timeout_ms: 1000,
        retry: { max_attempts: 10, strategy: "schedule", delays_ms: [500] },
      });
    });
    rx.requests.length = 0;
    dispatcher = startDispatcher();

    const t0 = Date.now();
    const burst = await burstWithRestart(EVENTS, mode);
    const insertedMs = Date.now() - t0;
    expect(burst.committed.size).toBe(EVENTS);
    // The restart really fell mid-burst: writes went in before it and after it.
    expect(burst.beforeRestart).toBeGreaterThan(0);
    expect(burst.afterRestart).toBeGreaterThan(0);

    await withSql(async ({ sql }) => {
      // Every event delivered and every delivery finished (at-least-once: succeeded, since the receiver is healthy).
      let last: Progress = await progress(sql);
      const done = await waitUntil(
        async () => {
          last = await progress(sql);
          const open = (last.deliveries.pending ?? 0) + (last.deliveries.retrying ?? 0);
          return last.received >= EVENTS && open === 0 && last.undispatched === 0;
        },
        DELIVERY_WAIT_MS,
        "every event delivered",
      ).then(
        () => true,
        () => false,
      );
      console.log(
        `postgres restart (${mode}) after ${burst.beforeRestart} of ${EVENTS} events, down ${burst.downMs} ms, ` +
          `${burst.failedInserts} inserts retried (${burst.lastInsertError ?? "none"}); burst took ${insertedMs} ms; ` +
          `${done ? `all delivered ${Date.now() - t0} ms after it began` : "NOT all delivered"}; ` +
          `${rx.requests.length} requests, ${rx.requests.length - last.received} duplicates`,
      );
      if (!done) {
        throw new Error(
          `after a Postgres restart (${mode}), ${DELIVERY_WAIT_MS} ms on, the dispatcher (not restarted) had sent ` +
            `${last.received} of ${EVENTS} committed events; deliveries by status ${JSON.stringify(last.deliveries)}, ` +
            `${last.undispatched} outbox rows not fanned out; graphile-worker jobs ` +
            `${await queueState(sql).catch((e: unknown) => `unreadable (${String(e)})`)}; ` +
            `dispatcher ${dispatcher?.exitCode === null ? "running" : `exited ${String(dispatcher?.exitCode)}`}, log:\n${dispatcherLog}`,
        );
      }
      // Invariant 1: exactly the committed transactions left events; each reached the receiver.
      const outbox = await sql<{ event_id: string }[]>`select event_id from webhooks.outbox`;
      expect(outbox).toHaveLength(EVENTS);
      expect(new Set(outbox.map((o) => o.event_id))).toEqual(new Set(rx.requests.map((r) => String(r.headers["webhook-id"]))));
      expect(last.deliveries).toEqual({ succeeded: EVENTS });
    });
    // The daemon got through the restart by itself.
    expect(dispatcher?.exitCode).toBeNull();
    const seqs = new Set(rx.requests.map((r) => (JSON.parse(r.body) as { data: { seq: number } }).data.seq));
    expect(seqs).toEqual(burst.committed);
  },
  90_000,
);
