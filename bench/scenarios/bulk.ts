// Bulk write: one INSERT … SELECT of sizes.bulkRows rows into the tracked table against the same
// into the untracked one, untracked then tracked, twice; the better time of each.
import { now, r2, type Bench } from "../harness";

export async function bulkInsert(b: Bench) {
  const bulk = async (table: string) => {
    await b.sql.unsafe(`truncate ${table}`);
    await b.sql`vacuum analyze webhooks.outbox`.catch(() => {});
    const t0 = now();
    await b.sql.unsafe(`
      insert into ${table} (seq, tenant, amount, note)
      select g, 't' || (g % 10), (g % 1000) / 10.0, md5(g::text) from generate_series(1, ${b.sizes.bulkRows}) g`);
    return now() - t0;
  };
  const times = { tracked: Infinity, untracked: Infinity };
  for (let round = 0; round < 2; round++) {
    times.untracked = Math.min(times.untracked, await bulk("bench_untracked"));
    times.tracked = Math.min(times.tracked, await bulk("bench_tracked"));
  }
  return {
    bulk_ratio: r2(times.tracked / times.untracked),
    bulk_ms: { tracked: Math.round(times.tracked), untracked: Math.round(times.untracked), rows: b.sizes.bulkRows },
  };
}
