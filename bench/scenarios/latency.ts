// Latency: sizes.latencyInserts single-row inserts at 20/s into the tracked table while the
// dispatcher is idle, each timed from its autocommit returning to the receiver's receipt.
import { assert, now, pct, r2, resetDeliveries, settled, sleep, type Bench, type ReceiverProc } from "../harness";

export async function latency(b: Bench, receiver: ReceiverProc) {
  const { sql } = b;
  await resetDeliveries(sql);
  await receiver.reset(true);
  await sleep(1500); // let the dispatcher go idle (it then asks for a NOTIFY)
  const n = b.sizes.latencyInserts;
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
