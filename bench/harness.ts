// What every bench scenario shares: the sizes, the scratch database, the receiver and dispatcher
// child processes, clocks and CPU counters, the event and webhook helpers, and the report file.
import { fork, spawn, execSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import postgres from "postgres";
import Table from "cli-table3";
import { migrate } from "../src/db/migrate";

export const ROOT = join(__dirname, "..");

export interface Sizes {
  writeSeconds: number;
  bulkRows: number;
  events: number;
  latencyInserts: number;
  fanoutSubs: number;
  isolationEvents: number;
  backlog: number;
}
export const SIZES: Record<"smoke" | "full", Sizes> = {
  smoke: { writeSeconds: 1, bulkRows: 2_000, events: 500, latencyInserts: 20, fanoutSubs: 10, isolationEvents: 300, backlog: 1_000 },
  full: { writeSeconds: 10, bulkRows: 100_000, events: 20_000, latencyInserts: 200, fanoutSubs: 100, isolationEvents: 5_000, backlog: 200_000 },
};
// The raw baseline's concurrency, and the bench webhook's max_in_flight: the same cap on both sides.
export const RAW_CONCURRENCY = 100;

/** The run's options, as bench/run.ts parsed them from its arguments and environment. */
export interface BenchOptions {
  smoke: boolean;
  sizes: Sizes;
  /** Node arguments for the dispatcher's process only (BENCH_DISPATCHER_NODE_ARGS). */
  dispatcherNodeArgs: string[];
  /** How long the backlog scenario lets the drain run before it reports it as incomplete. */
  backlogCapMs: number;
}

/** What a scenario is given: the options and the scratch database (its URL and a pool on it). */
export interface Bench extends BenchOptions {
  url: string;
  sql: postgres.Sql;
}

// ---------------------------------------------------------------------------------------
// Clocks, CPU counters, figures
// ---------------------------------------------------------------------------------------

export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const log = (...a: unknown[]) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);
export const r2 = (x: number) => Math.round(x * 100) / 100;

export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

export function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** CPU seconds (user + system) in a /proc/<pid>/stat line: utime, stime in clock ticks (USER_HZ = 100). */
function statCpuSeconds(stat: string): number {
  const f = stat.split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Busy and total jiffies of the whole machine, to report how saturated the CPUs were. */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** Starts counting; the returned function gives the machine's busy share of CPU time since then. */
export function machineCpuBusy(): () => number {
  const start = machineCpu();
  return () => {
    const e = machineCpu();
    return r2((e.busy - start.busy) / Math.max(1, e.total - start.total));
  };
}

/** CPU seconds (user + system) used so far by all processes named postgres (the server's backends). */
export function postgresCpuSeconds(): number {
  let seconds = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      seconds += statCpuSeconds(stat);
    } catch {
      /* gone */
    }
  }
  return seconds;
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/** Asks a child to stop, waits up to graceMs for it to exit, then kills it. */
async function stopChild(child: ChildProcess, ask: () => void, graceMs: number, onOverdue?: () => void): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  ask();
  await Promise.race([exited, sleep(graceMs)]);
  if (child.exitCode === null) {
    onOverdue?.();
    child.kill("SIGKILL");
    await exited;
  }
}

export interface ReceiverStats {
  count: number;
  firstAt: number;
  lastAt: number;
  times?: [string, number][];
}

/** What bench/receiver.js sends: once `ready` with its port, then replies carrying the request's id. */
type ReceiverMessage = { ready?: boolean; port?: number; id?: number } & Partial<ReceiverStats>;

/** bench/receiver.js in a child process: answers 200, counts and times what it receives. */
export class ReceiverProc {
  private nextId = 0;
  private pending = new Map<number, (m: ReceiverMessage) => void>();
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on("message", (m: ReceiverMessage) => {
      if (m.id === undefined) return;
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
      child.once("message", (m: ReceiverMessage) => (m.ready ? resolve(m.port!) : reject(new Error("receiver did not start"))));
      child.once("exit", (code) => reject(new Error(`receiver exited with ${code}`)));
    });
    return new ReceiverProc(child, `http://127.0.0.1:${port}`);
  }
  private call(msg: Record<string, unknown>): Promise<ReceiverMessage> {
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.send({ ...msg, id });
    });
  }
  async reset(record = false): Promise<void> {
    await this.call({ cmd: "reset", record });
  }
  async stats(times = false): Promise<ReceiverStats> {
    return (await this.call({ cmd: "stats", times })) as ReceiverStats;
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
  close(): Promise<void> {
    return stopChild(this.child, () => this.child.send({ cmd: "close" }), 3000);
  }
}

/** The bench runs the compiled binary, as an operator would. */
export function assertDispatcherBuilt(): void {
  if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) {
    throw new Error("dist/ is missing: run `npm run build` first (the bench runs the compiled bin/pg-webhooks.js)");
  }
}

/** `bin/pg-webhooks.js start --no-api --no-migrate` in a child process, with its memory sampled every 100 ms. */
export class DispatcherProc {
  peakRssKb = 0;
  /** RSS in MB every 5 s since the start, to show whether memory grows with the work. */
  readonly rssTimelineMb: number[] = [];
  private samples = 0;
  private sampler?: NodeJS.Timeout;
  private constructor(readonly child: ChildProcess) {}
  static start(b: Bench): DispatcherProc {
    const child = spawn(process.execPath, [...b.dispatcherNodeArgs, join(ROOT, "bin", "pg-webhooks.js"), "start", "--no-api", "--no-migrate"], {
      cwd: ROOT,
      env: {
        ...process.env,
        DATABASE_URL: b.url,
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
      return statCpuSeconds(readFileSync(`/proc/${this.child.pid}/stat`, "utf8"));
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
  stop(): Promise<void> {
    clearInterval(this.sampler);
    return stopChild(this.child, () => this.child.kill("SIGTERM"), 15000, () =>
      log("dispatcher did not exit within 15 s of SIGTERM; killing it"),
    );
  }
}

// ---------------------------------------------------------------------------------------
// The scratch database
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

export interface ScratchDatabase {
  url: string;
  sql: postgres.Sql;
  /** `select version()` of the server, for the report. */
  postgresVersion: string;
  /** now() once the database existed, before the migrations: the report's duration_s counts from here. */
  createdAt: number;
}

/**
 * Creates pgw_bench_<pid> next to baseUrl, migrates it, adds bench_tracked (tracked, topic
 * prefix "bench") and bench_untracked (the same table, not tracked), runs body, then drops it.
 */
export async function withScratchDatabase<T>(baseUrl: string, mode: string, body: (db: ScratchDatabase) => Promise<T>): Promise<T> {
  const dbName = `pgw_bench_${process.pid}`;
  const u = new URL(baseUrl);
  u.pathname = `/${dbName}`;
  const url = u.toString();
  const root = postgres(baseUrl, { max: 1, onnotice: () => {} });
  await root.unsafe(`create database ${dbName}`);
  log(`${mode} run in scratch database ${dbName}`);

  const sql = postgres(url, { max: 10, onnotice: () => {} });
  const createdAt = now();
  try {
    await migrate(sql, url);
    await sql.unsafe(TABLE_DDL("bench_tracked"));
    await sql.unsafe(TABLE_DDL("bench_untracked"));
    await sql`select webhooks.track_table('bench_tracked'::regclass, 'bench')`;
    const [pg] = await sql<{ v: string }[]>`select version() as v`;
    return await body({ url, sql, postgresVersion: pg!.v, createdAt });
  } finally {
    await sql.end({ timeout: 5 });
    await root.unsafe(`drop database if exists ${dbName} with (force)`).catch((e) => log("could not drop", dbName, e));
    await root.end({ timeout: 5 });
  }
}

// ---------------------------------------------------------------------------------------
// Webhooks, events, deliveries
// ---------------------------------------------------------------------------------------

export async function insertWebhook(sql: postgres.Sql, url: string, maxInFlight = 10): Promise<string> {
  const retry = { max_attempts: 3, strategy: "schedule", delays_ms: [100, 200] };
  const [row] = await sql<{ id: string }[]>`
    insert into webhooks.subscriptions (url, events, secret, retry, timeout_ms, max_in_flight)
    values (${url}, ${["*"]}, ${"whsec_" + Buffer.from("pg-webhooks-bench-secret-0123456").toString("base64")},
            ${sql.json(retry as never)}, 5000, ${maxInFlight})
    returning id`;
  return row!.id;
}

/** Inserts n events into the tracked table in statements of `chunk` rows. */
export async function insertEvents(sql: postgres.Sql, n: number, seqBase: number, chunk = 1000): Promise<void> {
  for (let from = 0; from < n; from += chunk) {
    const to = Math.min(n, from + chunk);
    await sql`
      insert into bench_tracked (seq, tenant, amount, note)
      select ${seqBase} + g, 't' || (g % 10), (g % 1000) / 10.0, md5(g::text)
      from generate_series(${from + 1}::bigint, ${to}::bigint) g`;
  }
}

/** Waits until `expected` deliveries are succeeded and nothing is owed; checks every attempt is recorded. */
export async function settled(sql: postgres.Sql, expected: number, timeoutMs: number, what: string): Promise<Date> {
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

export async function resetDeliveries(sql: postgres.Sql): Promise<void> {
  await sql`truncate webhooks.attempts, webhooks.deliveries, webhooks.outbox`;
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

export interface Machine {
  nproc: number;
  cpu: string | undefined;
  mem_gb: number;
  node: string;
  postgres: string;
}

export function machine(postgresVersion: string): Machine {
  return {
    nproc: Number(execSync("nproc").toString().trim()) || cpus().length,
    cpu: cpus()[0]?.model,
    mem_gb: r2(totalmem() / 2 ** 30),
    node: process.version,
    postgres: postgresVersion,
  };
}

/** A row of the printed table: the figure as shown, its target, and whether it is met (null: no target). */
export type Target = [value: string, target: string, met: boolean | null];

/** Writes bench/report.json (bench/report.smoke.json for --smoke) and prints the figures against their targets. */
export function writeReport(report: { machine: Machine; duration_s: number }, smoke: boolean, targets: Record<string, Target>): void {
  const file = smoke ? "report.smoke.json" : "report.json";
  writeFileSync(join(__dirname, file), JSON.stringify(report, null, 2) + "\n");
  const table = new Table({ head: ["figure", smoke ? "smoke value" : "value", "target", smoke ? "(not asserted)" : "met"] });
  for (const [k, [v, t, ok]] of Object.entries(targets)) table.push([k, v, t, ok === null ? "" : ok ? "yes" : "NO"]);
  console.log(table.toString());
  console.log(
    `${report.machine.nproc} cores, node ${report.machine.node}, ${report.machine.postgres.split(" on ")[0]}; ` +
      `${report.duration_s} s; written to bench/${file}`,
  );
}
