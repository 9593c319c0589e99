// How many connections a process opens: one setting, WEBHOOKS_DB_POOL_SIZE, bounds a running
// daemon's connections (counted in pg_stat_activity under load); and when the server has no
// slots left, a command says which setting to change.
import { Pool } from "pg";
import { connectionBudget } from "../src/db/budget";
import { loadConfig } from "../src/config";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { runCli, spawnCli, type RunningCli } from "./helpers/cli";
import { startPrivatePostgres, type PrivatePostgres } from "./helpers/private-pg";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, waitUntil } from "./helpers/pipeline";

describe("connectionBudget", () => {
  it.each([
    // size, concurrency, dispatcher → pool, worker, listen
    [20, 10, true, { pool: 9, worker: 10, listen: 1 }],
    [4, 10, true, { pool: 1, worker: 2, listen: 1 }],
    [5, 1, true, { pool: 2, worker: 2, listen: 1 }],
    [100, 10, true, { pool: 88, worker: 11, listen: 1 }],
    [20, 10, false, { pool: 20, worker: 0, listen: 0 }],
  ] as const)("splits %i connections (concurrency %i, dispatcher %s) without going over", (size, concurrency, dispatcher, want) => {
    const b = connectionBudget(size, concurrency, dispatcher);
    expect(b).toEqual(want);
    expect(b.pool + b.worker + b.listen).toBe(size);
    expect(b.pool).toBeGreaterThanOrEqual(1);
  });

  it("refuses a pool size too small to run, or not a number, naming the variable", () => {
    for (const bad of ["3", "0", "-1", "1e400", "9007199254740993", "ten", "4.5"]) {
      expect(() => loadConfig({ WEBHOOKS_DB_POOL_SIZE: bad })).toThrow(/WEBHOOKS_DB_POOL_SIZE/);
    }
    expect(loadConfig({}).WEBHOOKS_DB_POOL_SIZE).toBe(20);
  });
});

describe("a running daemon", () => {
  let t: TestDatabase;
  let rx: Receiver;
  let daemon: RunningCli | undefined;
  const APP = "pgw-connection-count";
  let probe: Pool;

  beforeAll(async () => {
    t = await createTestDatabase();
    await t.sql`create table public.items (id serial primary key, n int)`;
    await t.sql`select webhooks.track_table('public.items')`;
    // Slow answers keep many requests, claims and recordings going at once.
    rx = await startReceiver({ status: 200, delayMs: 30 });
    await insertWebhook(t.sql, { url: `${rx.url}/a`, events: ["items.created"], max_in_flight: 50 });
    await insertWebhook(t.sql, { url: `${rx.url}/b`, events: ["items.created"], max_in_flight: 50 });
    // The test's own connections stay out of the count: one, named.
    await t.sql.end();
    probe = new Pool({ connectionString: t.url, max: 1, application_name: APP });
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });
  afterAll(async () => {
    await probe?.end();
    await rx?.close();
    await t?.close();
  });

  async function peakConnections(env: Record<string, string>): Promise<{ peak: number; delivered: number }> {
    daemon = spawnCli(["start", "--no-migrate"], {
      env: { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true", PORT: "0", HOST: "127.0.0.1", WEBHOOKS_POLL_INTERVAL_MS: "200", ...env },
    });
    await daemon.waitForOutput("pg-webhooks running");
    const before = rx.requests.length;
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await probe.query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name is distinct from $1",
          [APP],
        );
        peak = Math.max(peak, r.rows[0]?.n ?? 0);
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    try {
      // Bursts in separate transactions: fanout, claims, lanes and the recorder all busy.
      for (let i = 0; i < 20; i++) await probe.query("insert into items (n) select generate_series(1, 50)");
      await waitUntil(async () => rx.requests.length - before >= 2000, 60_000, "2000 deliveries");
    } finally {
      sampling = false;
      await sampler;
    }
    return { peak, delivered: rx.requests.length - before };
  }

  it.each([
    ["the default", {}, 20],
    ["the smallest value", { WEBHOOKS_DB_POOL_SIZE: "4" }, 4],
  ] as const)("opens no more connections than WEBHOOKS_DB_POOL_SIZE at %s, and delivers", async (_what, env, limit) => {
    const { peak, delivered } = await peakConnections(env);
    console.log(`WEBHOOKS_DB_POOL_SIZE ${limit}: at most ${peak} connections while delivering ${delivered} requests`);
    expect(delivered).toBeGreaterThanOrEqual(2000);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(limit);
  }, 120_000);
});

describe("a server with no connection slots left", () => {
  let pg: PrivatePostgres;
  let hog: Pool;
  /** Takes every slot (superuser slots included: the test connects as a superuser). */
  const takeEverySlot = () => Promise.all(Array.from({ length: 6 }, () => hog.connect()));

  beforeAll(async () => {
    pg = await startPrivatePostgres();
    const admin = new Pool({ connectionString: pg.url, max: 1 });
    await admin.query("alter system set max_connections = 6");
    await admin.end();
    await pg.restart();
    hog = new Pool({ connectionString: pg.url, max: 6 });
    hog.on("error", () => {});
  }, 60_000);
  afterAll(async () => {
    await hog?.end();
    await pg?.destroy();
  });

  it("makes a command say which setting to change, on stderr, exit 1", async () => {
    const clients = await takeEverySlot();
    try {
      const r = await runCli(["status"], { env: { DATABASE_URL: pg.url } });
      expect(r.stderr).toMatch(/too many clients/);
      expect(r.stderr).toMatch(/WEBHOOKS_DB_POOL_SIZE/);
      expect(r.stderr).toMatch(/max_connections/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack
      expect(r.code).toBe(1);
    } finally {
      for (const c of clients) c.release();
    }
  });

  it("makes the daemon say which setting to change when it cannot start", async () => {
    const clients = await takeEverySlot();
    try {
      const r = await runCli(["start", "--no-api", "--no-migrate"], { env: { DATABASE_URL: pg.url, WEBHOOKS_DB_POOL_SIZE: "8" } });
      expect(r.stderr).toMatch(/WEBHOOKS_DB_POOL_SIZE connections \(now 8\)/);
      expect(r.code).toBe(1);
    } finally {
      for (const c of clients) c.release();
    }
  });
});
