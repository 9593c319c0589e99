// `npm run bench` (full) / `npm run bench -- --smoke` (tiny sizes, asserts correctness only).
// Creates a scratch database pgw_bench_<pid> next to DATABASE_URL, migrates it, runs the six
// scenarios of bench/scenarios/ (the write path's includes bulk.ts) in order against the real
// dispatcher binary (a child process) and a receiver in another child process, prints a table
// and writes bench/report.json. Drops the database. What they share is in bench/harness.ts.
import {
  RAW_CONCURRENCY, SIZES, DispatcherProc, ReceiverProc, assertDispatcherBuilt, insertWebhook, log, machine, now, r2,
  withScratchDatabase, writeReport, type Bench, type BenchOptions, type Target,
} from "./harness";
import { backlog } from "./scenarios/backlog";
import { fanout } from "./scenarios/fanout";
import { isolation } from "./scenarios/isolation";
import { latency } from "./scenarios/latency";
import { deliveryThroughput } from "./scenarios/throughput";
import { writePath } from "./scenarios/write";

const SMOKE = process.argv.includes("--smoke");
// `--only write,throughput,latency,backlog`: run just these scenarios (write covers bulk too), print their
// figures as JSON and write no report file. BENCH_DISPATCHER_NODE_ARGS go to the
// dispatcher's node only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it).
const ONLY_ARG = process.argv.indexOf("--only");
const ONLY = ONLY_ARG < 0 ? null : new Set((process.argv[ONLY_ARG + 1] ?? "").split(",").filter(Boolean).map((s) => (s === "bulk" ? "write" : s)));
if (ONLY && (ONLY.size === 0 || [...ONLY].some((s) => !["write", "throughput", "latency", "backlog"].includes(s)))) {
  throw new Error(`--only: expected a comma-separated list of write, bulk, throughput, latency, backlog; got ${JSON.stringify(process.argv[ONLY_ARG + 1] ?? "")}`);
}
const OPTIONS: BenchOptions = {
  smoke: SMOKE,
  sizes: SMOKE ? SIZES.smoke : SIZES.full,
  dispatcherNodeArgs: (process.env.BENCH_DISPATCHER_NODE_ARGS ?? "").split(/\s+/).filter(Boolean),
  backlogCapMs: SMOKE ? 60_000 : Number(process.env.BENCH_BACKLOG_CAP_S ?? 330) * 1000,
};

/** Logs the step, runs it, logs its figures. */
async function step<T>(label: string, run: () => Promise<T>): Promise<T> {
  log(label);
  const figures = await run();
  log("   ", JSON.stringify(figures));
  return figures;
}

async function main(): Promise<void> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) throw new Error("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
  assertDispatcherBuilt();
  await withScratchDatabase(baseUrl, SMOKE ? "smoke" : "full", async ({ url, sql, postgresVersion, createdAt }) => {
    const b: Bench = { ...OPTIONS, url, sql };
    let receiver: ReceiverProc | undefined;
    let dispatcher: DispatcherProc | undefined;
    /** The receiver, the main webhook (max_in_flight = the raw baseline's concurrency) and a registered dispatcher. */
    const startDelivering = async () => {
      receiver = await ReceiverProc.start();
      const mainSub = await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
      dispatcher = DispatcherProc.start(b);
      await dispatcher.ready(sql);
      return { receiver, dispatcher, mainSub };
    };
    try {
      if (ONLY) {
        const figures: Record<string, unknown> = {};
        if (ONLY.has("write")) Object.assign(figures, await writePath(b));
        if (ONLY.has("throughput") || ONLY.has("latency")) {
          const delivering = await startDelivering();
          if (ONLY.has("throughput")) Object.assign(figures, await deliveryThroughput(b, delivering.receiver, delivering.dispatcher));
          if (ONLY.has("latency")) Object.assign(figures, await latency(b, delivering.receiver));
          await delivering.dispatcher.stop();
          dispatcher = undefined;
        }
        if (ONLY.has("backlog")) {
          receiver ??= await ReceiverProc.start();
          const [w] = await sql`select 1 from webhooks.subscriptions limit 1`;
          if (!w) await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
          Object.assign(figures, await backlog(b, receiver));
        }
        console.log(JSON.stringify(figures));
        return;
      }

      const write = await step("1/6 write path", () => writePath(b));
      const delivering = await startDelivering();
      const thr = await step("2/6 delivery throughput", () => deliveryThroughput(b, delivering.receiver, delivering.dispatcher));
      const lat = await step("3/6 latency", () => latency(b, delivering.receiver));
      const fan = await step("4/6 fan-out", () => fanout(b, delivering.receiver, delivering.mainSub));
      const iso = await step("5/6 isolation", () => isolation(b, delivering.receiver, delivering.mainSub));
      await delivering.dispatcher.stop();
      const steadyRss = r2(delivering.dispatcher.peakRssKb / 1024);
      dispatcher = undefined;
      const back = await step("6/6 backlog", () => backlog(b, delivering.receiver));

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
        machine: machine(postgresVersion),
        notes: [
          "write path measured with webhooks.dispatcher_wakeup.idle = true (as an idle running dispatcher leaves it), so each tracked statement NOTIFYs",
          "dispatcher: bin/pg-webhooks.js start --no-api --no-migrate with default settings (WEBHOOKS_CONCURRENCY=10, poll 1000 ms); the bench webhook has max_in_flight = raw_concurrency",
          "isolation: the same events to the healthy webhook alone, then with a healthy second webhook subscribed too (reference), then with a webhook whose endpoint never answers (timeout 5 s, max_in_flight 10) instead; isolation_ratio = with the hanging one / alone",
          "latency: from the insert's autocommit returning to the receiver's receipt, both on this machine's clock",
        ],
        duration_s: r2((now() - createdAt) / 1000),
      };
      const backlogDrain = report.backlog;
      const targets: Record<string, Target> = {
        write_ratio: [String(report.write_ratio), "≥ 0.80", report.write_ratio >= 0.8],
        "write_ratio (no NOTIFY)": [String(report.write_ratio_no_notify), "", null],
        "write_ratio (32 clients)": [String(report.write_ratio_32), "≥ 0.80", report.write_ratio_32 >= 0.8],
        bulk_ratio: [String(report.bulk_ratio), "≤ 1.6", report.bulk_ratio <= 1.6],
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
          "cut_at_s" in backlogDrain
            ? `cut: ${backlogDrain.delivered}/${backlogDrain.events} in ${backlogDrain.cut_at_s} s`
            : `${backlogDrain.drain_s} (${backlogDrain.events} events)`,
          "",
          null,
        ],
        "backlog.peak_rss_mb": [String(report.backlog.peak_rss_mb), "≤ 250", report.backlog.peak_rss_mb <= 250],
      };
      writeReport(report, SMOKE, targets);
    } finally {
      await dispatcher?.stop().catch(() => {});
      await receiver?.close().catch(() => {});
    }
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
