// `npm run bench` (full) / `npm run bench -- --smoke` (tiny sizes, asserts correctness only).
// Creates a scratch database pgw_bench_<pid> next to DATABASE_URL, migrates it, runs the
// scenarios of bench/scenarios/ (the write path's includes bulk.ts) against the real dispatcher
// binary (child processes) and a receiver in another child process, `--runs N` times, prints
// each figure beside its goal and writes bench/report.json. Drops the database. What the
// scenarios share is in bench/harness.ts.
import {
  RAW_CONCURRENCY, SIZES, DispatcherProc, ReceiverProc, assertDispatcherBuilt, insertWebhook, log, machine, now, r2,
  withScratchDatabase, writeReport, type Bench, type BenchOptions, type FigureSpec, type SummaryRow,
} from "./harness";
import { backfill } from "./scenarios/backfill";
import { backlog } from "./scenarios/backlog";
import { fanout } from "./scenarios/fanout";
import { inbound } from "./scenarios/inbound";
import { isolation } from "./scenarios/isolation";
import { latency, latency200 } from "./scenarios/latency";
import { render } from "./scenarios/render";
import { rules } from "./scenarios/rules";
import { scale } from "./scenarios/scale";
import { deliveryThroughput } from "./scenarios/throughput";
import { writePath } from "./scenarios/write";

// In the order they run. `latency` is both rates; `backlog1m` is the large backlog
// (sizes.backlogLarge), which runs in the first run only.
const SCENARIOS = ["write", "rules", "render", "throughput", "latency", "fanout", "isolation", "scale", "backfill", "inbound", "backlog", "backlog1m"] as const;
type Scenario = (typeof SCENARIOS)[number];
const ALIASES: Record<string, Scenario> = { bulk: "write", latency200: "latency", backlog200k: "backlog" };

/** `--<name> a,b`: the scenarios named (aliases resolved), or null when the flag is absent. */
function scenarioList(name: string): Set<Scenario> | null {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return null;
  const raw = process.argv[i + 1] ?? "";
  const items = raw.split(",").filter(Boolean).map((s) => ALIASES[s] ?? s);
  const bad = items.filter((s) => !(SCENARIOS as readonly string[]).includes(s));
  if (items.length === 0 || bad.length > 0) {
    throw new Error(`--${name}: expected a comma-separated list of ${[...SCENARIOS, ...Object.keys(ALIASES)].join(", ")}; got ${JSON.stringify(raw)}`);
  }
  return new Set(items as Scenario[]);
}

const SMOKE = process.argv.includes("--smoke");
// `--only a,b`: just these scenarios; their figures go to stdout as JSON, no report file.
// `--skip a,b`: every scenario but these (e.g. `--skip backlog1m`), report file written.
const ONLY = scenarioList("only");
const SKIP = scenarioList("skip");
const RUNS_ARG = process.argv.indexOf("--runs");
const RUNS = RUNS_ARG < 0 ? 1 : Number(process.argv[RUNS_ARG + 1]);
if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error(`--runs: expected a whole number from 1 to 20; got ${JSON.stringify(process.argv[RUNS_ARG + 1] ?? "")}`);
const SELECTED = new Set(SCENARIOS.filter((s) => (ONLY ? ONLY.has(s) : true) && !SKIP?.has(s)));

const OPTIONS: BenchOptions = {
  smoke: SMOKE,
  sizes: SMOKE ? SIZES.smoke : SIZES.full,
  // BENCH_DISPATCHER_NODE_ARGS go to the dispatcher's node only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  dispatcherNodeArgs: (process.env.BENCH_DISPATCHER_NODE_ARGS ?? "").split(/\s+/).filter(Boolean),
  backlogCapMs: SMOKE ? 60_000 : Number(process.env.BENCH_BACKLOG_CAP_S ?? 330) * 1000,
};

type Figures = Record<string, unknown>;

/** Logs the step, runs it, logs its figures. */
async function step<T>(label: string, run: () => Promise<T>): Promise<T> {
  log(label);
  const figures = await run();
  log("   ", JSON.stringify(figures));
  return figures;
}

/** One run of the selected scenarios; the large backlog only when `large`. */
async function runOnce(b: Bench, receiver: ReceiverProc, mainSub: string, run: number, large: boolean): Promise<Figures> {
  const f: Figures = {};
  const tag = (s: string) => `run ${run}/${RUNS}: ${s}`;
  if (SELECTED.has("write")) Object.assign(f, await step(tag("write path"), () => writePath(b)));
  if (SELECTED.has("rules")) f.rules = await step(tag("event rules: 0, 1, 20 on a table"), () => rules(b.sql, b.smoke));
  if (SELECTED.has("render")) f.render = await step(tag("rendering bodies"), () => render(b.smoke));
  if (["throughput", "latency", "fanout", "isolation"].some((s) => SELECTED.has(s as Scenario))) {
    const d = DispatcherProc.start(b);
    try {
      await d.ready(b.sql);
      if (SELECTED.has("throughput")) Object.assign(f, await step(tag("delivery throughput"), () => deliveryThroughput(b, receiver, d)));
      if (SELECTED.has("latency")) {
        Object.assign(f, await step(tag("latency, 20 inserts/s"), () => latency(b, receiver)));
        Object.assign(f, await step(tag("latency, 200 writes/s"), () => latency200(b, receiver)));
      }
      if (SELECTED.has("fanout")) Object.assign(f, await step(tag("fan-out"), () => fanout(b, receiver, mainSub)));
      if (SELECTED.has("isolation")) Object.assign(f, await step(tag("isolation"), () => isolation(b, receiver, mainSub)));
    } finally {
      await d.stop();
    }
    f.dispatcher_peak_rss_mb_steady = r2(d.peakRssKb / 1024);
  }
  if (SELECTED.has("scale")) Object.assign(f, await step(tag("scaling: 1, 2, 4 dispatchers"), () => scale(b, receiver)));
  if (SELECTED.has("backfill")) Object.assign(f, await step(tag("backfill of existing rows"), () => backfill(b, receiver, mainSub)));
  if (SELECTED.has("inbound")) Object.assign(f, await step(tag("inbound: POST /in/<slug> vs a bare Fastify route"), () => inbound(b)));
  const small = SELECTED.has("backlog") ? await step(tag(`backlog of ${b.sizes.backlog}`), () => backlog(b, receiver, b.sizes.backlog)) : undefined;
  const big = large ? await step(tag(`backlog of ${b.sizes.backlogLarge}`), () => backlog(b, receiver, b.sizes.backlogLarge)) : undefined;
  if (small) f.backlog = small;
  if (big) f.backlog_large = big;
  if (small && big) {
    f.backlog_ratio = r2(big.per_s / small.per_s);
    f.backlog_rss_peak_ratio = r2(big.rss_mb.peak / small.rss_mb.peak);
    // CPU per delivery (dispatcher + the database's backends), large / small: the work each
    // delivery costs, which other load on a shared machine moves far less than the rate.
    const cpu = (x: typeof big) => x.dispatcher_cpu_s_per_1000 + x.postgres_cpu_s_per_1000;
    f.backlog_cpu_ratio = r2(cpu(big) / cpu(small));
  }
  return f;
}

/** The number at a dotted path of a run's figures ("scale.p1.deliveries_per_s"), if there is one. */
const at = (f: Figures, path: string): number | undefined => {
  const v = path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), f);
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
};

/** Every figure of the printed table and of report.json's summary, with its goal (from issue #15) where it has one. */
const FIGURES: FigureSpec[] = [
  { key: "write_ratio", label: "write_ratio (tracked / untracked insert tps, 4 clients, NOTIFY on)", goal: "≥ 0.80", ok: (x) => x >= 0.8 },
  { key: "write_ratio_no_notify", label: "write_ratio without NOTIFY (4 clients)" },
  { key: "write_ratio_32", label: "write_ratio_32 (32 clients)", goal: "≥ 0.80", ok: (x) => x >= 0.8 },
  { key: "bulk_ratio", label: "bulk_ratio (100k-row INSERT … SELECT, tracked / untracked)", goal: "≤ 1.6", ok: (x) => x <= 1.6 },
  { key: "rules.backend_cpu_us_per_update.stage_0_rules", label: "rules: µs per single-row UPDATE, 0 rules (backend CPU)" },
  { key: "rules.backend_cpu_us_per_update.stage_1_rules", label: "rules: µs per single-row UPDATE, 1 rule that fires" },
  { key: "rules.backend_cpu_us_per_update.stage_20_rules", label: "rules: µs per single-row UPDATE, 20 rules (1 fires)" },
  { key: "rules.backend_cpu_us_per_update.bulk_20_rules", label: "rules: µs per row of a 10,000-row UPDATE, 20 rules" },
  { key: "render.us_per_delivery.standard_as_sent", label: "render: µs per delivery, standard body (as send.ts)" },
  { key: "render.us_per_delivery.classic", label: "render: µs per delivery, classic preset" },
  { key: "render.us_per_delivery.slack_template", label: "render: µs per delivery, a JSONata template (Slack text)" },
  { key: "render.us_per_delivery.classic_as_jsonata", label: "render: µs per delivery, the classic body as JSONata" },
  { key: "deliveries_per_s", label: "deliveries/s (1 dispatcher, 100 in flight)" },
  { key: "raw_per_s", label: "raw undici POSTs/s (same bodies)" },
  { key: "throughput_ratio", label: "throughput_ratio (deliveries / raw)", goal: "≥ 0.50 (aim 0.70)", ok: (x) => x >= 0.5 },
  { key: "latency_200_ms.p50", label: "latency p50 ms, 200 writes/s (commit → receipt)", goal: "≤ 5", ok: (x) => x <= 5 },
  { key: "latency_200_ms.p95", label: "latency p95 ms, 200 writes/s" },
  { key: "latency_200_ms.p99", label: "latency p99 ms, 200 writes/s", goal: "≤ 20", ok: (x) => x <= 20 },
  { key: "latency_ms.p50", label: "latency p50 ms, 20 inserts/s (idle dispatcher, NOTIFY)" },
  { key: "latency_ms.p99", label: "latency p99 ms, 20 inserts/s" },
  { key: "fanout_ms", label: "fanout_ms (one event, 100 webhooks, commit → last receipt)" },
  { key: "isolation_ratio", label: "isolation_ratio (healthy rate with a hanging sibling / alone)", goal: "≥ 0.80", ok: (x) => x >= 0.8 },
  { key: "scale.p1.deliveries_per_s", label: "scale: deliveries/s, 1 dispatcher" },
  { key: "scale.p2.deliveries_per_s", label: "scale: deliveries/s, 2 dispatchers" },
  { key: "scale.p4.deliveries_per_s", label: "scale: deliveries/s, 4 dispatchers" },
  { key: "scale_ratio_2", label: "scale: 2 / 1 dispatchers" },
  { key: "scale_ratio_4", label: "scale: 4 / 1 dispatchers" },
  { key: "scale.p1.dispatcher_cpu_s_per_1000", label: "dispatcher CPU s per 1,000 deliveries (1 process)" },
  { key: "scale.p4.dispatcher_cpu_s_per_1000", label: "dispatcher CPU s per 1,000 deliveries (4 processes)" },
  { key: "scale.p1.postgres_cpu_s_per_1000", label: "Postgres CPU s per 1,000 deliveries (bench db backends, 1 process)" },
  { key: "scale.p4.postgres_cpu_s_per_1000", label: "Postgres CPU s per 1,000 deliveries (4 processes)" },
  { key: "scale.p1.connections_per_process.0", label: "connections per dispatcher process (1 process)" },
  { key: "scale.p4.connections_per_process.0", label: "connections per dispatcher process (4 processes, the first)" },
  { key: "backfill_rows_per_s", label: "backfill rows/s written as events (40,000 existing rows, one webhook)" },
  { key: "backfill_delivered_per_s", label: "backfill rows/s delivered (start → last delivery recorded)" },
  { key: "inbound_per_s", label: "inbound requests/s (POST /in/<slug>, api_key, stored and committed, 16 clients)" },
  { key: "inbound_p99_ms", label: "inbound p99 ms" },
  { key: "inbound_bare_per_s", label: "bare Fastify route requests/s (same clients and bodies)" },
  { key: "inbound_bare_p99_ms", label: "bare Fastify route p99 ms" },
  { key: "inbound_ratio", label: "inbound_ratio (inbound / bare Fastify requests per second)" },
  { key: "inbound_insert_ceiling_per_s", label: "plain committed INSERTs/s from postgres.js (16 clients, same bodies)" },
  { key: "inbound_insert_ratio", label: "inbound_insert_ratio (inbound / plain committed inserts per second)" },
  { key: "backlog.per_s", label: "backlog drain/s (sizes.backlog events)" },
  { key: "backlog_large.per_s", label: "backlog drain/s (sizes.backlogLarge events)" },
  { key: "backlog_ratio", label: "backlog_ratio (large / small drain rate)", goal: "≥ 0.90", ok: (x) => x >= 0.9 },
  { key: "backlog_cpu_ratio", label: "backlog CPU per delivery, large / small (dispatcher + Postgres)" },
  { key: "backlog.rss_mb.peak", label: "backlog peak RSS MB (small)", goal: "≤ 250", ok: (x) => x <= 250 },
  { key: "backlog_large.rss_mb.peak", label: "backlog peak RSS MB (large)", goal: "≤ 250", ok: (x) => x <= 250 },
  { key: "backlog_rss_peak_ratio", label: "backlog peak RSS large / small (flat memory)", goal: "≤ 1.20", ok: (x) => x <= 1.2 },
];

async function main(): Promise<void> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) throw new Error("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
  assertDispatcherBuilt();
  const sizes = OPTIONS.sizes;
  const label = (s: string) => s.replace("sizes.backlogLarge", sizes.backlogLarge.toLocaleString("en")).replace("sizes.backlog", sizes.backlog.toLocaleString("en"));
  const specs = FIGURES.map((s) => ({ ...s, label: label(s.label) }));
  await withScratchDatabase(baseUrl, SMOKE ? "smoke" : "full", async ({ url, sql, postgresVersion, postgresSettings, createdAt }) => {
    const b: Bench = { ...OPTIONS, url, sql };
    const receiver = await ReceiverProc.start();
    try {
      // The main webhook: max_in_flight = the raw baseline's concurrency, every scenario's target.
      const mainSub = await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
      const runs: Figures[] = [];
      for (let run = 1; run <= RUNS; run++) runs.push(await runOnce(b, receiver, mainSub, run, run === 1 && SELECTED.has("backlog1m")));
      const report = {
        mode: SMOKE ? "smoke" : "full",
        at: new Date().toISOString(),
        runs: RUNS,
        scenarios: [...SELECTED],
        sizes,
        summary: summarize(specs, runs),
        per_run: runs,
        machine: machine(postgresVersion, postgresSettings),
        notes: [
          "summary: each figure's value in every run, min/median/max, and met = the median meets the goal (null: no goal); the large backlog runs in the first run only",
          "write path measured with webhooks.dispatcher_wakeup.idle = true (as an idle running dispatcher leaves it), so each tracked statement NOTIFYs",
          "dispatcher: bin/pg-webhooks.js start --no-api --no-migrate with default settings (WEBHOOKS_* of the caller's environment cleared; WEBHOOKS_CONCURRENCY=10, poll 1000 ms); the bench webhook has max_in_flight = raw_concurrency",
          "isolation: the same events to the healthy webhook alone, then with a healthy second webhook subscribed too (reference), then with a webhook whose endpoint never answers (timeout 5 s, max_in_flight 10) instead; isolation_ratio = with the hanging one / alone",
          "latency: from the insert's autocommit returning to the receiver's receipt, both on this machine's clock; no same-run baseline",
          "Postgres CPU (throughput, scale, backlog) = the bench database's backends (pg_stat_activity pids, sampled every 250 ms); postgres_shared_cpu_s = the server's background processes (WAL writer, checkpointer, background writer), which serve every database",
          "inbound: bin/pg-webhooks.js start --no-dispatcher --no-admin, a source with verify api_key and X-Tenant-ID; each 200 is a committed row (checked); the baseline is a bare Fastify app (buffer body parser, one route answering {id}) in its own process, same 16 undici clients, same bodies, right after",
          "scale: connections = pg_stat_activity rows whose client_port is one of that process's sockets to the server, the most seen during the run",
        ],
        duration_s: r2((now() - createdAt) / 1000),
      };
      if (ONLY) {
        console.log(JSON.stringify(report, null, 2));
        writeReport(report, SMOKE, null);
      } else writeReport(report, SMOKE, SMOKE ? "report.smoke.json" : "report.json");
    } finally {
      await receiver.close().catch(() => {});
    }
  });
}

/** Each figure's values over the runs, min/median/max and whether the median meets its goal. */
function summarize(specs: FigureSpec[], runs: Figures[]) {
  const out: Record<string, SummaryRow> = {};
  for (const s of specs) {
    const values = runs.map((r) => at(r, s.key)).filter((x): x is number => x !== undefined);
    if (values.length === 0) continue;
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length / 2;
    const median = sorted.length % 2 ? sorted[Math.floor(mid)]! : r2((sorted[mid - 1]! + sorted[mid]!) / 2);
    out[s.key] = {
      label: s.label,
      goal: s.goal ?? null,
      values,
      min: sorted[0]!,
      median,
      max: sorted[sorted.length - 1]!,
      met: s.ok ? s.ok(median) : null,
    };
  }
  return out;
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
