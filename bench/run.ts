// `npm run bench` (full) / `npm run bench -- --smoke` (tiny sizes, asserts correctness only).
// Creates a scratch database pgw_bench_<pid> next to DATABASE_URL, migrates it, runs the five
// scenarios of issue 5 against the real dispatcher binary (a child process) and a receiver in
// another child process, prints a table and writes bench/report.json. Drops the database.
import { fork, spawn, execSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import postgres from "postgres";
import Table from "cli-table3";
import { request, Agent } from "undici";
import { migrate } from "../src/db/migrate";

const ROOT = join(__dirname, "..");
const SMOKE = process.argv.includes("--smoke");
// `--only write,throughput,latency,backlog`: run just these scenarios (write covers bulk too), print their
// figures as JSON and write no report file. BENCH_DISPATCHER_NODE_ARGS go to the
// dispatcher's node only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it).
const ONLY_ARG = process.argv.indexOf("--only");
const ONLY = ONLY_ARG < 0 ? null : new Set((process.argv[ONLY_ARG + 1] ?? "").split(",").filter(Boolean).map((s) => (s === "bulk" ? "write" : s)));
if (ONLY && (ONLY.size === 0 || [...ONLY].some((s) => !["write", "throughput", "latency", "backlog"].includes(s)))) {
  throw new Error(`--only: expected a comma-separated list of write, bulk, throughput, latency, backlog; got ${JSON.stringify(process.argv[ONLY_ARG + 1] ?? "")}`);
}
const SIZES = SMOKE
  ? { writeSeconds: 1, bulkRows: 2_000, events: 500, latencyInserts: 20, fanoutSubs: 10, isolationEvents: 300, backlog: 1_000 }
  : { writeSeconds: 10, bulkRows: 100_000, events: 20_000, latencyInserts: 200, fanoutSubs: 100, isolationEvents: 5_000, backlog: 200_000 };
// The raw baseline's concurrency, and the bench webhook's max_in_flight: the same cap on both sides.
const RAW_CONCURRENCY = 100;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

interface ReceiverStats {
  count: number;
  firstAt: number;
  lastAt: number;
  times?: [string, number][];
}

class ReceiverProc {
  private nextId = 0;
  private pending = new Map<number, (m: any) => void>();
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on("message", (m: any) => {
      const cb = this.pending.get(m.id);
      if (cb) {
        this.pending.delete(m.id);
        cb(m);
      }
    });
  }
  static async start(): Promise<ReceiverProc> {
    const child = fork(join(__dirname, "receiver.js"), [], { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const port = await new Promise<number>((resolve, reject) => {
      child.once("message", (m: any) => (m.ready ? resolve(m.port) : reject(new Error("receiver did not start"))));
      child.once("exit", (code) => reject(new Error(`receiver exited with ${code}`)));
    });
    return new ReceiverProc(child, `http://127.0.0.1:${port}`);
  }
  private call(msg: Record<string, unknown>): Promise<any> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.send({ ...msg, id });
    });
  }
  reset(record = false): Promise<void> {
    return this.call({ cmd: "reset", record });
  }
  stats(times = false): Promise<ReceiverStats> {
    return this.call({ cmd: "stats", times });
  }
  async waitFor(count: number, timeoutMs: number, what: string): Promise<ReceiverStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (s.count >= count) return s;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${s.count}/${count} received)`);
      await sleep(20);
    }
  }
  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.send({ cmd: "close" });
    await Promise.race([exited, sleep(3000)]);
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

class DispatcherProc {
  peakRssKb = 0;
  /** RSS in MB every 5 s since the start, to show whether memory grows with the work. */
  readonly rssTimelineMb: number[] = [];
  private samples = 0;
  private sampler?: NodeJS.Timeout;
  private constructor(readonly child: ChildProcess) {}
  static start(databaseUrl: string): DispatcherProc {
    const nodeArgs = (process.env.BENCH_DISPATCHER_NODE_ARGS ?? "").split(/\s+/).filter(Boolean);
    const child = spawn(process.execPath, [...nodeArgs, join(ROOT, "bin", "pg-webhooks.js"), "start", "--no-api", "--no-migrate"], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const d = new DispatcherProc(child);
    d.sampler = setInterval(() => d.sampleRss(), 100);
    return d;
  }
  sampleRss(): void {
    if (!this.child.pid || this.child.exitCode !== null) return;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.child.pid}/status`, "utf8"));
      if (m) {
        this.peakRssKb = Math.max(this.peakRssKb, Number(m[1]));
        if (this.samples++ % 50 === 0) this.rssTimelineMb.push(Math.round(Number(m[1]) / 1024));
      }
    } catch {
      /* exited between the check and the read */
    }
  }
  /** CPU seconds (user + system) the dispatcher has used so far. */
  cpuSeconds(): number {
    try {
      const f = readFileSync(`/proc/${this.child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
    } catch {
      return NaN;
    }
  }
  /** Waits until the dispatcher has registered (its heartbeat row exists). */
  async ready(sql: postgres.Sql, timeoutMs = 20000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`dispatcher exited with ${this.child.exitCode}`);
      const [r] = await sql`select count(*)::int as n from webhooks.dispatchers where pid = ${this.child.pid!}`;
      if (r!.n > 0) return;
      await sleep(50);
    }
    throw new Error("dispatcher did not register within 20 s");
  }
  async stop(): Promise<void> {
    clearInterval(this.sampler);
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await Promise.race([exited, sleep(15000)]);
    if (this.child.exitCode === null) {
      log("dispatcher did not exit within 15 s of SIGTERM; killing it");
      this.child.kill("SIGKILL");
      await exited;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const TABLE_DDL = (name: string) => `
  create table ${name} (
    id bigint generated always as identity primary key,
    seq bigint not null,
    tenant text not null,
    status text not null default 'new',
    amount numeric(12,2) not null,
    note text,
    created_at timestamptz not null default now()
  )`;

async function insertWebhook(sql: postgres.Sql, url: string, maxInFlight = 10): Promise<string> {
  const retry = { max_attempts: 3, strategy: "schedule", delays_ms: [100, 200] };
  const [row] = await sql<{ id: string }[]>`
    insert into webhooks.subscriptions (url, events, secret, retry, timeout_ms, max_in_flight)
    values (${url}, ${["*"]}, ${"whsec_" + Buffer.from("pg-webhooks-bench-secret-0123456").toString("base64")},
            ${sql.json(retry as never)}, 5000, ${maxInFlight})
    returning id`;
  return row!.id;
}

/** Inserts n events into the tracked table in statements of `chunk` rows. */
async function insertEvents(sql: postgres.Sql, n: number, seqBase: number, chunk = 1000): Promise<void> {
  for (let from = 0; from < n; from += chunk) {
    const to = Math.min(n, from + chunk);
    await sql`
      insert into bench_tracked (seq, tenant, amount, note)
      select ${seqBase} + g, 't' || (g % 10), (g % 1000) / 10.0, md5(g::text)
      from generate_series(${from + 1}::bigint, ${to}::bigint) g`;
  }
}

/** Waits until `expected` deliveries are succeeded and nothing is owed; checks every attempt is recorded. */
async function settled(sql: postgres.Sql, expected: number, timeoutMs: number, what: string): Promise<Date> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [r] = await sql<{ ok: number; open: number; failed: number; undispatched: boolean; last: Date | null }[]>`
      select count(*) filter (where status = 'succeeded')::int as ok,
             count(*) filter (where status in ('pending', 'retrying'))::int as open,
             count(*) filter (where status in ('failed', 'cancelled'))::int as failed,
             exists (select 1 from webhooks.outbox where dispatched_at is null) as undispatched,
             max(finished_at) as last
      from webhooks.deliveries`;
    assert(r!.failed === 0, `${what}: ${r!.failed} deliveries failed`);
    if (r!.ok >= expected && r!.open === 0 && !r!.undispatched) {
      assert(r!.ok === expected, `${what}: expected ${expected} succeeded deliveries, found ${r!.ok}`);
      const [a] = await sql<{ n: number }[]>`select count(*)::int as n from webhooks.attempts`;
      assert(a!.n >= expected, `${what}: ${expected} deliveries but only ${a!.n} attempts recorded`);
      return r!.last!;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(r)}`);
    await sleep(100);
  }
}

async function resetDeliveries(sql: postgres.Sql): Promise<void> {
  await sql`truncate webhooks.attempts, webhooks.deliveries, webhooks.outbox`;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
const r2 = (x: number) => Math.round(x * 100) / 100;

/** Busy and total jiffies of the whole machine, to report how saturated the CPUs were. */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}
/** CPU seconds (user + system) used so far by all processes named postgres (the server's backends). */
function postgresCpuSeconds(): number {
  let ticks = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const f = stat.split(") ")[1]!.split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return ticks / 100;
}

function cpuSince(start: { busy: number; total: number }): number {
  const e = machineCpu();
  return r2((e.busy - start.busy) / Math.max(1, e.total - start.total));
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

async function writePath(url: string, admin: postgres.Sql) {
  // The idle flag as a running, idle dispatcher leaves it: writers NOTIFY (the worst case).
  await admin`update webhooks.dispatcher_wakeup set idle = true`;
  const clients = postgres(url, { max: 4, onnotice: () => {} });
  const phase = async (table: "bench_tracked" | "bench_untracked", seconds: number) => {
    const end = Date.now() + seconds * 1000;
    let n = 0;
    await Promise.all(
      [0, 1, 2, 3].map(async (c) => {
        while (Date.now() < end) {
          await clients`insert into ${clients(table)} (seq, tenant, amount, note) values (${n}, ${"t" + c}, 12.5, 'x')`;
          n++;
        }
      }),
    );
    return n / seconds;
  };
  await phase("bench_untracked", 0.5); // warm-up: connections, plans
  await phase("bench_tracked", 0.5);
  // Short alternating phases (A/B/A/B…), so drift in the machine's speed (shared host, WAL
  // flush latency) falls on both sides alike.
  const rounds = SMOKE ? 2 : 10;
  const phaseSeconds = SIZES.writeSeconds / rounds;
  const tps = { tracked: [] as number[], untracked: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      tps.tracked.push(await phase("bench_tracked", phaseSeconds));
      tps.untracked.push(await phase("bench_untracked", phaseSeconds));
    } else {
      tps.untracked.push(await phase("bench_untracked", phaseSeconds));
      tps.tracked.push(await phase("bench_tracked", phaseSeconds));
    }
  }
  const half = SIZES.writeSeconds / 2;
  // The same with the flag cleared, as a busy dispatcher leaves it (no NOTIFY): shows the NOTIFY's share.
  await admin`update webhooks.dispatcher_wakeup set idle = false`;
  const busyTracked = (await phase("bench_tracked", half)) ;
  const busyUntracked = await phase("bench_untracked", half);
  await admin`update webhooks.dispatcher_wakeup set idle = true`;
  await clients.end();
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const tracked_tps = mean(tps.tracked);
  const untracked_tps = mean(tps.untracked);

  // Bulk: INSERT … SELECT, untracked then tracked, twice; the better of each.
  const bulk = async (table: string) => {
    await admin.unsafe(`truncate ${table}`);
    await admin`vacuum analyze webhooks.outbox`.catch(() => {});
    const t0 = now();
    await admin.unsafe(`
      insert into ${table} (seq, tenant, amount, note)
      select g, 't' || (g % 10), (g % 1000) / 10.0, md5(g::text) from generate_series(1, ${SIZES.bulkRows}) g`);
    return now() - t0;
  };
  const times = { tracked: Infinity, untracked: Infinity };
  for (let round = 0; round < 2; round++) {
    times.untracked = Math.min(times.untracked, await bulk("bench_untracked"));
    times.tracked = Math.min(times.tracked, await bulk("bench_tracked"));
  }
  const [o] = await admin<{ n: number }[]>`select count(*)::int as n from webhooks.outbox`;
  assert(o!.n > 0, "write path: the tracked table produced no outbox rows");
  await admin`truncate bench_tracked, bench_untracked`;
  await resetDeliveries(admin);
  return {
    write_ratio: r2(tracked_tps / untracked_tps),
    write_tps: { tracked: Math.round(tracked_tps), untracked: Math.round(untracked_tps), clients: 4, seconds_each: SIZES.writeSeconds, rounds },
    write_ratio_per_round: tps.tracked.map((t, i) => r2(t / tps.untracked[i]!)),
    bulk_ratio: r2(times.tracked / times.untracked),
    bulk_ms: { tracked: Math.round(times.tracked), untracked: Math.round(times.untracked), rows: SIZES.bulkRows },
    write_idle_flag: true,
    write_ratio_no_notify: r2(busyTracked / busyUntracked),
  };
}

async function deliveryThroughput(sql: postgres.Sql, receiver: ReceiverProc, d: DispatcherProc) {
  await receiver.reset();
  const cpu0 = machineCpu();
  const dcpu0 = d.cpuSeconds();
  const pgcpu0 = postgresCpuSeconds();
  const n = SIZES.events;
  const [t0row] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
  const wall0 = now();
  await insertEvents(sql, n, 0, 500);
  const insertedMs = now() - wall0;
  await receiver.waitFor(n, SMOKE ? 60_000 : 300_000, "delivery throughput");
  const last = await settled(sql, n, 60_000, "delivery throughput");
  const seconds = (last.getTime() - t0row!.t.getTime()) / 1000;
  const deliveries_per_s = n / seconds;
  const machine_cpu_busy = cpuSince(cpu0);
  const dispatcher_cpu_s = r2(d.cpuSeconds() - dcpu0);
  const postgres_cpu_s = r2(postgresCpuSeconds() - pgcpu0);

  // Baseline: the very bodies the dispatcher sent, POSTed raw with undici at RAW_CONCURRENCY.
  const bodies = (await sql<{ b: string }[]>`select request_body as b from webhooks.attempts order by id`).map((r) => r.b);
  assert(bodies.length === n, `expected ${n} recorded attempts, found ${bodies.length}`);
  await receiver.reset();
  const agent = new Agent({ connections: RAW_CONCURRENCY });
  let next = 0;
  const rawCpu0 = machineCpu();
  const rt0 = now();
  await Promise.all(
    Array.from({ length: RAW_CONCURRENCY }, async () => {
      for (let i = next++; i < bodies.length; i = next++) {
        const res = await request(receiver.url + "/raw", {
          method: "POST",
          body: bodies[i],
          headers: { "content-type": "application/json" },
          dispatcher: agent,
        });
        await res.body.dump();
        assert(res.statusCode === 200, `raw POST answered ${res.statusCode}`);
      }
    }),
  );
  const rawSeconds = (now() - rt0) / 1000;
  const raw_cpu_busy = cpuSince(rawCpu0);
  await agent.close();
  const s = await receiver.stats();
  assert(s.count === n, `raw baseline: receiver saw ${s.count} of ${n}`);
  const raw_per_s = n / rawSeconds;
  return {
    deliveries_per_s: Math.round(deliveries_per_s),
    raw_per_s: Math.round(raw_per_s),
    throughput_ratio: r2(deliveries_per_s / raw_per_s),
    throughput: { events: n, seconds: r2(seconds), insert_ms: Math.round(insertedMs), raw_concurrency: RAW_CONCURRENCY,
      machine_cpu_busy, dispatcher_cpu_s, postgres_cpu_s, raw_machine_cpu_busy: raw_cpu_busy },
  };
}

async function latency(sql: postgres.Sql, receiver: ReceiverProc) {
  await resetDeliveries(sql);
  await receiver.reset(true);
  await sleep(1500); // let the dispatcher go idle (it then asks for a NOTIFY)
  const n = SIZES.latencyInserts;
  const base = 10_000_000;
  const committed = new Map<string, number>();
  const start = now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const due = start + i * 50; // 20/s
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    const seq = base + i;
    inflight.push(
      sql`insert into bench_tracked (seq, tenant, amount, note) values (${seq}, 't1', 1.00, 'latency')`.then(() => {
        committed.set(String(seq), now());
      }),
    );
  }
  await Promise.all(inflight);
  await receiver.waitFor(n, 60_000, "latency events");
  const s = await receiver.stats(true);
  const lat = (s.times ?? [])
    .filter(([seq]) => committed.has(seq))
    .map(([seq, t]) => t - committed.get(seq)!)
    .sort((a, b) => a - b);
  assert(lat.length === n, `latency: matched ${lat.length} of ${n} receipts`);
  await settled(sql, n, 30_000, "latency");
  return { latency_ms: { p50: r2(pct(lat, 50)), p95: r2(pct(lat, 95)), p99: r2(pct(lat, 99)), max: r2(lat[lat.length - 1]!), n } };
}

async function fanout(sql: postgres.Sql, receiver: ReceiverProc, mainSub: string) {
  await resetDeliveries(sql);
  await sql`update webhooks.subscriptions set is_active = false where id = ${mainSub}`;
  const subs: string[] = [];
  for (let i = 0; i < SIZES.fanoutSubs; i++) subs.push(await insertWebhook(sql, `${receiver.url}/fanout/${i}`));
  await receiver.reset();
  await sleep(1500); // idle again
  await sql`insert into bench_tracked (seq, tenant, amount, note) values (20000000, 't1', 1.00, 'fanout')`;
  const committed = now();
  const s = await receiver.waitFor(SIZES.fanoutSubs, 60_000, "fan-out");
  await settled(sql, SIZES.fanoutSubs, 30_000, "fan-out");
  await sql`delete from webhooks.subscriptions where id = any(${subs}::uuid[])`;
  await sql`update webhooks.subscriptions set is_active = true where id = ${mainSub}`;
  return { fanout_ms: r2(s.lastAt - committed), fanout_subscriptions: SIZES.fanoutSubs };
}

/**
 * A healthy webhook's delivery rate with a hanging sibling subscribed to the same events,
 * against its rate alone, measured in the same run: `isolation_ratio` (with / without).
 */
async function isolation(sql: postgres.Sql, receiver: ReceiverProc, mainSub: string) {
  const n = SIZES.isolationEvents;
  const healthyRun = async (seqBase: number) => {
    await resetDeliveries(sql);
    await receiver.reset();
    const t0 = now();
    await insertEvents(sql, n, seqBase, 500);
    const s = await receiver.waitFor(n, 120_000, "isolation: healthy deliveries");
    const [r] = await sql<{ ok: number }[]>`
      select count(*)::int as ok from webhooks.deliveries where subscription_id = ${mainSub} and status = 'succeeded'`;
    return { perS: n / ((s.lastAt - t0) / 1000), received: s.count, succeeded: r!.ok };
  };
  const alone = await healthyRun(40_000_000);
  await settled(sql, n, 60_000, "isolation: healthy alone");
  // For reference: the same extra work (a second webhook on every event), but healthy.
  const sibling = await insertWebhook(sql, `${receiver.url}/sibling`);
  const withHealthy = await healthyRun(39_000_000);
  await settled(sql, 2 * n, 60_000, "isolation: healthy sibling");
  await sql`delete from webhooks.subscriptions where id = ${sibling}`;
  // The sick sibling: accepts connections, never answers; its requests time out after 5 s.
  const sick = await insertWebhook(sql, `${receiver.url}/hang`);
  const withSick = await healthyRun(41_000_000);
  const [a] = await sql<{ n: number; waiting: number }[]>`
    select (select count(*)::int from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
             where d.subscription_id = ${sick}) as n,
           (select count(*)::int from webhooks.deliveries where subscription_id = ${sick} and status in ('pending', 'retrying')) as waiting`;
  await sql`update webhooks.subscriptions set is_active = false where id = ${sick}`;
  await sleep(6000); // let the hung requests time out and be recorded before the tables are cleared
  await resetDeliveries(sql);
  await sql`delete from webhooks.endpoint_health where subscription_id = ${sick}`;
  await sql`delete from webhooks.subscriptions where id = ${sick}`;
  return {
    isolation_ratio: r2(withSick.perS / alone.perS),
    isolation: {
      events: n,
      healthy_alone_per_s: Math.round(alone.perS),
      healthy_with_healthy_sibling_per_s: Math.round(withHealthy.perS),
      healthy_with_hanging_sibling_per_s: Math.round(withSick.perS),
      healthy_succeeded_with_sibling: withSick.succeeded,
      sick_attempts_meanwhile: a!.n,
      sick_deliveries_waiting: a!.waiting,
    },
  };
}

async function backlog(sql: postgres.Sql, url: string, receiver: ReceiverProc) {
  await resetDeliveries(sql);
  const n = SIZES.backlog;
  const ti = now();
  await insertEvents(sql, n, 30_000_000, 20_000);
  log(`backlog: ${n} events inserted in ${Math.round(now() - ti)} ms; starting the dispatcher`);
  await sql`vacuum analyze webhooks.outbox`;
  await receiver.reset();
  const t0 = now();
  const cpu0 = machineCpu();
  const d = DispatcherProc.start(url);
  // Full mode caps the drain so the whole run stays under 10 minutes; a capped drain is
  // reported as incomplete with the rate it reached, not as an error.
  const capMs = SMOKE ? 60_000 : Number(process.env.BENCH_BACKLOG_CAP_S ?? 330) * 1000;
  let delivered = n;
  let dcpu = NaN;
  try {
    try {
      await receiver.waitFor(n, capMs, "backlog drain");
      await settled(sql, n, 60_000, "backlog drain");
    } catch (e) {
      if (SMOKE) throw e;
      delivered = (await receiver.stats()).count;
      log(`backlog: drain cut at ${capMs / 1000} s with ${delivered}/${n} delivered`);
    }
  } finally {
    d.sampleRss();
    dcpu = d.cpuSeconds();
    await d.stop();
  }
  const drain_s = (now() - t0) / 1000;
  const machine_cpu_busy = cpuSince(cpu0);
  return {
    backlog: {
      events: n,
      drain_s: delivered === n ? r2(drain_s) : null,
      ...(delivered === n ? {} : { incomplete: true, delivered, cut_at_s: r2(drain_s), estimated_drain_s: r2(n / (delivered / drain_s)) }),
      per_s: Math.round(delivered / drain_s),
      peak_rss_mb: r2(d.peakRssKb / 1024),
      rss_mb_every_5s: d.rssTimelineMb,
      machine_cpu_busy,
      dispatcher_cpu_s: r2(dcpu),
    },
  };
}

// ---------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) throw new Error("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
  if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) {
    throw new Error("dist/ is missing: run `npm run build` first (the bench runs the compiled bin/pg-webhooks.js)");
  }
  const dbName = `pgw_bench_${process.pid}`;
  const u = new URL(baseUrl);
  u.pathname = `/${dbName}`;
  const url = u.toString();
  const root = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await root.unsafe(`create database ${dbName}`);
  log(`${SMOKE ? "smoke" : "full"} run in scratch database ${dbName}`);

  const sql = postgres(url, { max: 10, onnotice: () => {} });
  let receiver: ReceiverProc | undefined;
  let dispatcher: DispatcherProc | undefined;
  const startedAt = now();
  try {
    await migrate(sql, url);
    await sql.unsafe(TABLE_DDL("bench_tracked"));
    await sql.unsafe(TABLE_DDL("bench_untracked"));
    await sql`select webhooks.track_table('bench_tracked'::regclass, 'bench')`;
    const [pg] = await sql<{ v: string }[]>`select version() as v`;

    if (ONLY) {
      const figures: Record<string, unknown> = {};
      if (ONLY.has("write")) Object.assign(figures, await writePath(url, sql));
      if (ONLY.has("throughput") || ONLY.has("latency")) {
        receiver = await ReceiverProc.start();
        await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
        dispatcher = DispatcherProc.start(url);
        await dispatcher.ready(sql);
        if (ONLY.has("throughput")) Object.assign(figures, await deliveryThroughput(sql, receiver, dispatcher));
        if (ONLY.has("latency")) Object.assign(figures, await latency(sql, receiver));
        await dispatcher.stop();
        dispatcher = undefined;
      }
      if (ONLY.has("backlog")) {
        receiver ??= await ReceiverProc.start();
        const [w] = await sql`select 1 from webhooks.subscriptions limit 1`;
        if (!w) await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
        Object.assign(figures, await backlog(sql, url, receiver));
      }
      console.log(JSON.stringify(figures));
      return;
    }

    log("1/6 write path");
    const write = await writePath(url, sql);
    log("   ", JSON.stringify(write));

    receiver = await ReceiverProc.start();
    const mainSub = await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
    dispatcher = DispatcherProc.start(url);
    await dispatcher.ready(sql);

    log("2/6 delivery throughput");
    const thr = await deliveryThroughput(sql, receiver, dispatcher);
    log("   ", JSON.stringify(thr));
    log("3/6 latency");
    const lat = await latency(sql, receiver);
    log("   ", JSON.stringify(lat));
    log("4/6 fan-out");
    const fan = await fanout(sql, receiver, mainSub);
    log("   ", JSON.stringify(fan));
    log("5/6 isolation");
    const iso = await isolation(sql, receiver, mainSub);
    log("   ", JSON.stringify(iso));
    await dispatcher.stop();
    const steadyRss = r2(dispatcher.peakRssKb / 1024);
    dispatcher = undefined;

    log("6/6 backlog");
    const back = await backlog(sql, url, receiver);
    log("   ", JSON.stringify(back));

    const report = {
      mode: SMOKE ? "smoke" : "full",
      at: new Date().toISOString(),
      ...write,
      ...thr,
      ...lat,
      ...fan,
      ...iso,
      ...back,
      dispatcher_peak_rss_mb_scenarios_2_4: steadyRss,
      machine: {
        nproc: Number(execSync("nproc").toString().trim()) || cpus().length,
        cpu: cpus()[0]?.model,
        mem_gb: r2(totalmem() / 2 ** 30),
        node: process.version,
        postgres: pg!.v,
      },
      notes: [
        "write path measured with webhooks.dispatcher_wakeup.idle = true (as an idle running dispatcher leaves it), so each tracked statement NOTIFYs",
        "dispatcher: bin/pg-webhooks.js start --no-api --no-migrate with default settings (WEBHOOKS_CONCURRENCY=10, poll 1000 ms); the bench webhook has max_in_flight = raw_concurrency",
        "isolation: the same events to the healthy webhook alone, then with a healthy second webhook subscribed too (reference), then with a webhook whose endpoint never answers (timeout 5 s, max_in_flight 10) instead; isolation_ratio = with the hanging one / alone",
        "latency: from the insert's autocommit returning to the receiver's receipt, both on this machine's clock",
      ],
      duration_s: r2((now() - startedAt) / 1000),
    };
    writeFileSync(join(__dirname, SMOKE ? "report.smoke.json" : "report.json"), JSON.stringify(report, null, 2) + "\n");

    const targets: Record<string, [string, string, boolean | null]> = {
      write_ratio: [String(report.write_ratio), "≥ 0.80", report.write_ratio >= 0.8],
      "write_ratio (no NOTIFY)": [String(report.write_ratio_no_notify), "", null],
      bulk_ratio: [String(report.bulk_ratio), "≤ 2.0", report.bulk_ratio <= 2.0],
      deliveries_per_s: [String(report.deliveries_per_s), "", null],
      raw_per_s: [String(report.raw_per_s), "", null],
      throughput_ratio: [String(report.throughput_ratio), "≥ 0.70", report.throughput_ratio >= 0.7],
      "latency_ms.p50": [String(report.latency_ms.p50), "≤ 10", report.latency_ms.p50 <= 10],
      "latency_ms.p95": [String(report.latency_ms.p95), "", null],
      "latency_ms.p99": [String(report.latency_ms.p99), "≤ 50", report.latency_ms.p99 <= 50],
      fanout_ms: [`${report.fanout_ms} (${report.fanout_subscriptions} subs)`, "", null],
      isolation_ratio: [
        `${report.isolation_ratio} (${report.isolation.healthy_with_hanging_sibling_per_s} vs ${report.isolation.healthy_alone_per_s}/s)`,
        "≥ 0.80",
        report.isolation_ratio >= 0.8,
      ],
      "backlog.drain_s": [
        report.backlog.drain_s === null
          ? `cut: ${(report.backlog as any).delivered}/${report.backlog.events} in ${(report.backlog as any).cut_at_s} s`
          : `${report.backlog.drain_s} (${report.backlog.events} events)`,
        "",
        null,
      ],
      "backlog.peak_rss_mb": [String(report.backlog.peak_rss_mb), "≤ 250", report.backlog.peak_rss_mb <= 250],
    };
    const table = new Table({ head: ["figure", SMOKE ? "smoke value" : "value", "target", SMOKE ? "(not asserted)" : "met"] });
    for (const [k, [v, t, ok]] of Object.entries(targets)) table.push([k, v, t, ok === null ? "" : ok ? "yes" : "NO"]);
    console.log(table.toString());
    console.log(
      `${report.machine.nproc} cores, node ${report.machine.node}, ${report.machine.postgres.split(" on ")[0]}; ` +
        `${report.duration_s} s; written to bench/${SMOKE ? "report.smoke.json" : "report.json"}`,
    );
  } finally {
    await dispatcher?.stop().catch(() => {});
    await receiver?.close().catch(() => {});
    await sql.end({ timeout: 5 });
    await root.unsafe(`drop database if exists ${dbName} with (force)`).catch((e) => log("could not drop", dbName, e));
    await root.end({ timeout: 5 });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
