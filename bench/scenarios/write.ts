// Write path: single-row insert tps into the tracked table against the untracked one, at 4 and at
// 32 clients (alternating rounds), with writers NOTIFYing as for an idle dispatcher and again
// without (4 clients); then the bulk scenario, whose figures sit among these in the report.
import postgres from "postgres";
import { assert, r2, resetDeliveries, type Bench } from "../harness";
import { bulkInsert } from "./bulk";

type Table = "bench_tracked" | "bench_untracked";

/** tps of `clientCount` clients each inserting one row per statement, for `seconds`. */
async function phase(clients: postgres.Sql, clientCount: number, table: Table, seconds: number): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: clientCount }, async (_, c) => {
      while (Date.now() < end) {
        await clients`insert into ${clients(table)} (seq, tenant, amount, note) values (${n}, ${"t" + c}, 12.5, 'x')`;
        n++;
      }
    }),
  );
  return n / seconds;
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

/**
 * Tracked against untracked with `clientCount` clients: short alternating phases (A/B/B/A…), so
 * drift in the machine's speed (shared host, WAL flush latency) falls on both sides alike.
 */
async function singleRows(b: Bench, clientCount: number) {
  const clients = postgres(b.url, { max: clientCount, onnotice: () => {} });
  try {
    await phase(clients, clientCount, "bench_untracked", 0.5); // warm-up: connections, plans
    await phase(clients, clientCount, "bench_tracked", 0.5);
    const rounds = b.smoke ? 2 : 10;
    const phaseSeconds = b.sizes.writeSeconds / rounds;
    const tps = { tracked: [] as number[], untracked: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      const order: Table[] = round % 2 === 0 ? ["bench_tracked", "bench_untracked"] : ["bench_untracked", "bench_tracked"];
      for (const table of order) {
        (table === "bench_tracked" ? tps.tracked : tps.untracked).push(await phase(clients, clientCount, table, phaseSeconds));
      }
    }
    const tracked = mean(tps.tracked);
    const untracked = mean(tps.untracked);
    return {
      ratio: r2(tracked / untracked),
      tps: { tracked: Math.round(tracked), untracked: Math.round(untracked), clients: clientCount, seconds_each: b.sizes.writeSeconds, rounds },
      per_round: tps.tracked.map((t, i) => r2(t / tps.untracked[i]!)),
      clients,
    };
  } catch (e) {
    await clients.end();
    throw e;
  }
}

export async function writePath(b: Bench) {
  const admin = b.sql;
  // The idle flag as a running, idle dispatcher leaves it: writers NOTIFY (the worst case).
  await admin`update webhooks.dispatcher_wakeup set idle = true`;
  const four = await singleRows(b, 4);
  const half = b.sizes.writeSeconds / 2;
  // The same with the flag cleared, as a busy dispatcher leaves it (no NOTIFY): shows the NOTIFY's share.
  await admin`update webhooks.dispatcher_wakeup set idle = false`;
  const busyTracked = await phase(four.clients, 4, "bench_tracked", half);
  const busyUntracked = await phase(four.clients, 4, "bench_untracked", half);
  await admin`update webhooks.dispatcher_wakeup set idle = true`;
  await four.clients.end();
  const many = await singleRows(b, 32);
  await many.clients.end();

  const bulk = await bulkInsert(b);
  const [o] = await admin<{ n: number }[]>`select count(*)::int as n from webhooks.outbox`;
  assert(o!.n > 0, "write path: the tracked table produced no outbox rows");
  await admin`truncate bench_tracked, bench_untracked`;
  await resetDeliveries(admin);
  return {
    write_ratio: four.ratio,
    write_tps: four.tps,
    write_ratio_per_round: four.per_round,
    write_ratio_32: many.ratio,
    write_tps_32: many.tps,
    write_ratio_32_per_round: many.per_round,
    ...bulk,
    write_idle_flag: true,
    write_ratio_no_notify: r2(busyTracked / busyUntracked),
  };
}
