// Latency, commit → receipt, each insert timed from its autocommit returning to the receiver's
// receipt (both clocks on this machine). Two rates: 20 inserts/s, so the dispatcher is idle and
// woken by a NOTIFY before each event; and 200 writes/s from 4 clients, each write its own
// transaction, paced to a fixed schedule. No same-run baseline: these are plain figures.
import postgres from "postgres";
import { assert, now, pct, r2, resetDeliveries, settled, sleep, type Bench, type ReceiverProc } from "../harness";

/** Percentiles of commit → receipt for the inserts in `committed` (seq → commit time). */
async function receipts(b: Bench, receiver: ReceiverProc, committed: Map<string, number>, what: string) {
  const n = committed.size;
  await receiver.waitFor(n, 60_000, what);
  const s = await receiver.stats(true);
  const lat = (s.times ?? [])
    .filter(([seq]) => committed.has(seq))
    .map(([seq, t]) => t - committed.get(seq)!)
    .sort((a, b) => a - b);
  assert(lat.length === n, `${what}: matched ${lat.length} of ${n} receipts`);
  await settled(b.sql, n, 60_000, what);
  return { p50: r2(pct(lat, 50)), p95: r2(pct(lat, 95)), p99: r2(pct(lat, 99)), max: r2(lat[lat.length - 1]!), n };
}

/** sizes.latencyInserts single-row inserts at 20/s while the dispatcher is idle between them. */
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
  return { latency_ms: await receipts(b, receiver, committed, "latency (20/s)") };
}

const RATE = 200;
const CLIENTS = 4;

/**
 * 200 writes/s for sizes.latency200Seconds: write i is due at start + i × 5 ms and goes to
 * client i mod 4, each client a connection of its own that commits one write at a time (a
 * client that falls behind writes its due ones back to back, so the rate holds on average).
 */
export async function latency200(b: Bench, receiver: ReceiverProc) {
  const { sql } = b;
  await resetDeliveries(sql);
  const clients = Array.from({ length: CLIENTS }, () => postgres(b.url, { max: 1, onnotice: () => {} }));
  try {
    await Promise.all(clients.map((c) => c`select 1`)); // connect before the clock starts
    await receiver.reset(true);
    await sleep(1500);
    const n = RATE * b.sizes.latency200Seconds;
    const base = 11_000_000;
    const committed = new Map<string, number>();
    let behindMax = 0;
    const start = now() + 10;
    await Promise.all(
      clients.map(async (c, k) => {
        for (let i = k; i < n; i += CLIENTS) {
          const due = start + (i * 1000) / RATE;
          const wait = due - now();
          if (wait > 0) await sleep(wait);
          else behindMax = Math.max(behindMax, -wait);
          const seq = base + i;
          await c`insert into bench_tracked (seq, tenant, amount, note) values (${seq}, ${"t" + k}, 1.00, 'latency200')`;
          committed.set(String(seq), now());
        }
      }),
    );
    const writeSeconds = (now() - start) / 1000;
    const figures = await receipts(b, receiver, committed, "latency (200/s)");
    return {
      latency_200_ms: { ...figures, clients: CLIENTS, writes_per_s: Math.round(n / writeSeconds), most_behind_schedule_ms: r2(behindMax) },
    };
  } finally {
    await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
  }
}
