// `npm run bench:postgres`: what Postgres writes per delivery on the throughput path. The same
// setup as the throughput scenario (one webhook, max_in_flight 100, the real dispatcher binary),
// then BENCH_POSTGRES_EVENTS events (default 5,000) and, per delivery: rows inserted, updated
// (and how many of those were HOT) per table, bytes of each table and index, the bytes of an
// attempt row and its parts, and transactions. Counts, not times: they do not depend on the
// machine's load. Needs a build (`npm run build`) and DATABASE_URL.
import {
  RAW_CONCURRENCY, SIZES, DispatcherProc, ReceiverProc, assertDispatcherBuilt, insertEvents, insertWebhook, log, resetDeliveries,
  settled, sleep, withScratchDatabase, type Bench,
} from "./harness";

const EVENTS = Number(process.env.BENCH_POSTGRES_EVENTS ?? 5000);
// An idle backend publishes its table counters within 10 s (PostgreSQL 15: PGSTAT_IDLE_INTERVAL).
const STATS_FLUSH_MS = 11_000;

const perDelivery = (x: number | string | bigint): number => Math.round((Number(x) / EVENTS) * 1000) / 1000;

async function main(): Promise<void> {
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) throw new Error("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
  assertDispatcherBuilt();
  await withScratchDatabase(baseUrl, "postgres-work", async ({ url, sql }) => {
    const b: Bench = { smoke: false, sizes: SIZES.full, dispatcherNodeArgs: [], backlogCapMs: 0, url, sql };
    const receiver = await ReceiverProc.start();
    await insertWebhook(sql, `${receiver.url}/hook`, RAW_CONCURRENCY);
    const dispatcher = DispatcherProc.start(b);
    try {
      await dispatcher.ready(sql);
      // Warm up (lane window, connections), then start the counters from empty tables.
      await insertEvents(sql, 200, 0, 200);
      await receiver.waitFor(200, 60_000, "warm-up");
      await settled(sql, 200, 60_000, "warm-up");
      await resetDeliveries(sql);
      await sleep(STATS_FLUSH_MS);
      await sql`select pg_stat_reset()`;
      const [before] = await sql<{ commits: string }[]>`
        select xact_commit as commits from pg_stat_database where datname = current_database()`;
      await receiver.reset();
      await insertEvents(sql, EVENTS, 1_000_000, 500);
      await receiver.waitFor(EVENTS, 300_000, "postgres work");
      await settled(sql, EVENTS, 60_000, "postgres work");
      await sleep(STATS_FLUSH_MS);

      const [after] = await sql<{ commits: string }[]>`
        select xact_commit as commits from pg_stat_database where datname = current_database()`;
      const tables = await sql<{ name: string; ins: string; upd: string; hot: string; del: string; bytes: string }[]>`
        select schemaname || '.' || relname as name, n_tup_ins as ins, n_tup_upd as upd, n_tup_hot_upd as hot,
               n_tup_del as del, pg_table_size(relid) as bytes
          from pg_stat_user_tables
         where n_tup_ins + n_tup_upd + n_tup_del > 0
         order by 1`;
      const indexes = await sql<{ name: string; bytes: string }[]>`
        select indexrelname as name, pg_relation_size(indexrelid) as bytes
          from pg_stat_user_indexes where schemaname = 'webhooks' and relname in ('outbox', 'deliveries', 'attempts')
         order by relname, 1`;
      const [attempt] = await sql<Record<string, number>[]>`
        select avg(pg_column_size(a.*))::int as row, avg(pg_column_size(request_headers))::int as request_headers,
               avg(pg_column_size(request_body))::int as request_body, avg(pg_column_size(response_headers))::int as response_headers,
               avg(pg_column_size(response_body))::int as response_body
          from webhooks.attempts a`;
      const figures = {
        events: EVENTS,
        transactions_per_delivery: perDelivery(BigInt(after?.commits ?? 0) - BigInt(before?.commits ?? 0)),
        per_delivery: Object.fromEntries(
          tables.map((t) => [t.name, { inserted: perDelivery(t.ins), updated: perDelivery(t.upd), hot_updated: perDelivery(t.hot),
                                       deleted: perDelivery(t.del), table_bytes: perDelivery(t.bytes) }]),
        ),
        index_bytes_per_delivery: Object.fromEntries(indexes.map((i) => [i.name, perDelivery(i.bytes)])),
        attempt_row_bytes: attempt,
      };
      log(JSON.stringify(figures, null, 2));
    } finally {
      await dispatcher.stop();
      await receiver.close();
    }
  });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
