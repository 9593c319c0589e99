// What every bench scenario shares: the sizes, the scratch database, the receiver and dispatcher
// child processes, clocks and CPU counters, the event and webhook helpers, and the report file.
import { fork, spawn, execSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
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
  /** Inserts of the idle-dispatcher latency scenario (20/s). */
  latencyInserts: number;
  /** Seconds of the 200 writes/s latency scenario. */
  latency200Seconds: number;
  fanoutSubs: number;
  isolationEvents: number;
  /** Events of each run of the scaling scenario (1, 2 and 4 dispatchers). */
  scaleEvents: number;
  backlog: number;
  /** The large backlog, compared with `backlog`. */
  backlogLarge: number;
}
export const SIZES: Record<"smoke" | "full", Sizes> = {
  smoke: {
    writeSeconds: 1, bulkRows: 2_000, events: 500, latencyInserts: 20, latency200Seconds: 1, fanoutSubs: 10, isolationEvents: 300,
    scaleEvents: 500, backlog: 1_000, backlogLarge: 5_000,
  },
  full: {
    writeSeconds: 10, bulkRows: 100_000, events: 20_000, latencyInserts: 200, latency200Seconds: 10, fanoutSubs: 100, isolationEvents: 5_000,
    scaleEvents: 20_000, backlog: 200_000, backlogLarge: 1_000_000,
  },
};
// The raw baseline's concurrency, and the bench webhook's max_in_flight: the same cap on both sides.
export const RAW_CONCURRENCY = 100;

/** The run's options, as bench/run.ts parsed them from its arguments and environment. */
export interface BenchOptions {
  smoke: boolean;
  sizes: Sizes;
  /** Node arguments for the dispatcher's process only (BENCH_DISPATCHER_NODE_ARGS). */
  dispatcherNodeArgs: string[];
  /** How long the backlog scenario lets a drain of sizes.backlog events run before it reports it as incomplete (scaled for larger backlogs). */
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

/** CPU seconds (user + system) of one process so far; NaN once it has gone. */
export function processCpuSeconds(pid: number): number {
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return NaN;
  }
}

/**
 * CPU of the server's processes for the bench database, sampled every 250 ms so that backends
 * which come and go (autovacuum workers) count up to their last sample: `backends`, those
 * attached to the bench database (its pg_stat_activity pids; the bench's own connections count,
 * the events' inserts being part of the work), and `shared`, the server's background processes
 * (WAL writer, checkpointer, background writer), which serve every database on the server.
 * Backends of other databases are left out, whoever else uses the server meanwhile.
 */
export class BackendCpu {
  private readonly seen = new Map<number, { shared: boolean; base: number; last: number }>();
  private timer?: NodeJS.Timeout;
  private constructor(private readonly sql: postgres.Sql) {}
  static async start(sql: postgres.Sql): Promise<BackendCpu> {
    const c = new BackendCpu(sql);
    for (const { pid, shared } of await c.pids()) {
      const t = processCpuSeconds(pid);
      if (!Number.isNaN(t)) c.seen.set(pid, { shared, base: t, last: t });
    }
    c.timer = setInterval(() => void c.sample().catch(() => {}), 250);
    return c;
  }
  private async pids(): Promise<{ pid: number; shared: boolean }[]> {
    return await this.sql<{ pid: number; shared: boolean }[]>`
      select pid, datname is null as shared from pg_stat_activity
       where datname = current_database() or (datname is null and backend_type <> 'client backend')`;
  }
  private async sample(): Promise<void> {
    for (const { pid, shared } of await this.pids()) {
      const t = processCpuSeconds(pid);
      if (Number.isNaN(t)) continue;
      const s = this.seen.get(pid);
      if (s) s.last = t;
      else this.seen.set(pid, { shared, base: 0, last: t }); // started since start(): all of its time is ours
    }
  }
  /** Stops sampling; the CPU seconds used since start(). */
  async stop(): Promise<{ backends: number; shared: number }> {
    clearInterval(this.timer);
    await this.sample();
    const total = { backends: 0, shared: 0 };
    for (const { shared, base, last } of this.seen.values()) total[shared ? "shared" : "backends"] += last - base;
    return total;
  }
}

/** The local TCP ports of a process's sockets connected to port `remotePort` (IPv4 and IPv6). */
function socketPorts(pid: number, remotePort: number): Set<number> {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    return new Set();
  }
  const ports = new Set<number>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      const local = parseInt(f[1]!.split(":")[1]!, 16);
      const remote = parseInt(f[2]!.split(":")[1]!, 16);
      if (remote === remotePort) ports.add(local);
    }
  }
  return ports;
}

/**
 * How many backends of the bench database each process holds: pg_stat_activity's client_port
 * matched against the process's own sockets to the server (so graphile-worker's pool counts
 * as well as ours, whatever application_name they give).
 */
export async function connectionsPerProcess(sql: postgres.Sql, url: string, pids: number[]): Promise<number[]> {
  const serverPort = Number(new URL(url).port || 5432);
  const rows = await sql<{ port: number }[]>`
    select client_port as port from pg_stat_activity where datname = current_database() and client_port is not null`;
  const backendPorts = new Set(rows.map((r) => r.port));
  return pids.map((pid) => [...socketPorts(pid, serverPort)].filter((p) => backendPorts.has(p)).length);
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

/**
 * The bench's environment for the dispatcher, without any WEBHOOKS_* variable of the caller's:
 * the dispatcher runs with the defaults of src/config, whatever shell the bench runs in.
 */
export function dispatcherEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WEBHOOKS_")));
}

/** `bin/pg-webhooks.js start --no-api --no-migrate` in a child process, with its memory sampled every 100 ms. */
export class DispatcherProc {
  peakRssKb = 0;
  /** The first and the latest RSS sample, in kB. */
  firstRssKb = 0;
  lastRssKb = 0;
  /** RSS in MB every second since the start, to show whether memory grows with the work. */
  readonly rssTimelineMb: number[] = [];
  private samples = 0;
  private sampler?: NodeJS.Timeout;
  private constructor(readonly child: ChildProcess) {}
  /** `env`: variables on top of the defaults (e.g. a smaller WEBHOOKS_DB_POOL_SIZE). */
  static start(b: Bench, env: Record<string, string> = {}): DispatcherProc {
    const child = spawn(process.execPath, [...b.dispatcherNodeArgs, join(ROOT, "bin", "pg-webhooks.js"), "start", "--no-api", "--no-migrate"], {
      cwd: ROOT,
      env: {
        ...dispatcherEnv(),
        DATABASE_URL: b.url,
        WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
        LOG_LEVEL: "warn",
        ...env,
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
        const kb = Number(m[1]);
        this.peakRssKb = Math.max(this.peakRssKb, kb);
        if (!this.firstRssKb) this.firstRssKb = kb;
        this.lastRssKb = kb;
        if (this.samples++ % 10 === 0) this.rssTimelineMb.push(Math.round(kb / 1024));
      }
    } catch {
      /* exited between the check and the read */
    }
  }
  /** CPU seconds (user + system) the dispatcher has used so far. */
  cpuSeconds(): number {
    return this.child.pid ? processCpuSeconds(this.child.pid) : NaN;
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
  /** The server settings the figures depend on most (autovacuum off changes the backlog's). */
  postgresSettings: Record<string, string>;
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
    const settings = await sql<{ name: string; setting: string }[]>`
      select name, current_setting(name) as setting from pg_settings
       where name in ('autovacuum', 'shared_buffers', 'max_connections', 'synchronous_commit', 'fsync', 'max_wal_size')
       order by name`;
    const postgresSettings = Object.fromEntries(settings.map((r) => [r.name, r.setting]));
    if (postgresSettings.autovacuum === "off") log("note: autovacuum is off on this server; the backlog figures depend on it (see README Performance)");
    return await body({ url, sql, postgresVersion: pg!.v, postgresSettings, createdAt });
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
  postgres_settings: Record<string, string>;
}

export function machine(postgresVersion: string, postgresSettings: Record<string, string>): Machine {
  return {
    nproc: Number(execSync("nproc").toString().trim()) || cpus().length,
    cpu: cpus()[0]?.model,
    mem_gb: r2(totalmem() / 2 ** 30),
    node: process.version,
    postgres: postgresVersion,
    postgres_settings: postgresSettings,
  };
}

/** A figure of the report: where it is in a run's figures, what it is, and its goal if it has one. */
export interface FigureSpec {
  /** Dotted path into a run's figures. */
  key: string;
  label: string;
  goal?: string;
  ok?: (x: number) => boolean;
}

export interface SummaryRow {
  label: string;
  goal: string | null;
  values: number[];
  min: number | null;
  median: number | null;
  max: number | null;
  met: boolean | null;
}

/**
 * Writes bench/<file> (none when file is null) and prints every figure of the summary: its
 * value in each run, min / median / max, its goal and whether the median meets it.
 */
export function writeReport(
  report: { machine: Machine; duration_s: number; runs: number; summary: Record<string, SummaryRow> },
  smoke: boolean,
  file: string | null,
): void {
  if (file) writeFileSync(join(__dirname, file), JSON.stringify(report, null, 2) + "\n");
  const table = new Table({ head: ["figure", report.runs > 1 ? "runs" : "value", "min / median / max", "goal", smoke ? "met (not asserted)" : "met"] });
  for (const row of Object.values(report.summary)) {
    table.push([
      row.label,
      row.values.join(", "),
      row.values.length > 1 ? `${row.min} / ${row.median} / ${row.max}` : "",
      row.goal ?? "",
      row.met === null ? "" : row.met ? "yes" : "NO",
    ]);
  }
  // stderr when stdout carries the JSON (--only)
  (file ? console.log : console.error)(table.toString());
  (file ? console.log : console.error)(
    `${report.machine.nproc} cores, node ${report.machine.node}, ${report.machine.postgres.split(" on ")[0]} ` +
      `(autovacuum ${report.machine.postgres_settings.autovacuum ?? "?"}, shared_buffers ${report.machine.postgres_settings.shared_buffers ?? "?"}); ` +
      `${report.runs} run(s), ${report.duration_s} s${file ? `; written to bench/${file}` : ""}`,
  );
}
