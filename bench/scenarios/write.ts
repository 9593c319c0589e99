// Write path: single-row insert tps into the tracked table against the untracked one (4 clients,
// alternating rounds), with writers NOTIFYing as for an idle dispatcher and again without; then
// the bulk scenario, whose figures sit among these in the report.
import postgres from "postgres";
import { assert, r2, resetDeliveries, type Bench } from "../harness";
import { bulkInsert } from "./bulk";

export async function writePath(b: Bench) {
  const admin = b.sql;
  // The idle flag as a running, idle dispatcher leaves it: writers NOTIFY (the worst case).
  await admin`update webhooks.dispatcher_wakeup set idle = true`;
  const clients = postgres(b.url, { max: 4, onnotice: () => {} });
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
  const rounds = b.smoke ? 2 : 10;
  const phaseSeconds = b.sizes.writeSeconds / rounds;
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
  const half = b.sizes.writeSeconds / 2;
  // The same with the flag cleared, as a busy dispatcher leaves it (no NOTIFY): shows the NOTIFY's share.
  await admin`update webhooks.dispatcher_wakeup set idle = false`;
  const busyTracked = await phase("bench_tracked", half);
  const busyUntracked = await phase("bench_untracked", half);
  await admin`update webhooks.dispatcher_wakeup set idle = true`;
  await clients.end();
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const tracked_tps = mean(tps.tracked);
  const untracked_tps = mean(tps.untracked);

  const bulk = await bulkInsert(b);
  const [o] = await admin<{ n: number }[]>`select count(*)::int as n from webhooks.outbox`;
  assert(o!.n > 0, "write path: the tracked table produced no outbox rows");
  await admin`truncate bench_tracked, bench_untracked`;
  await resetDeliveries(admin);
  return {
    write_ratio: r2(tracked_tps / untracked_tps),
    write_tps: { tracked: Math.round(tracked_tps), untracked: Math.round(untracked_tps), clients: 4, seconds_each: b.sizes.writeSeconds, rounds },
    write_ratio_per_round: tps.tracked.map((t, i) => r2(t / tps.untracked[i]!)),
    ...bulk,
    write_idle_flag: true,
    write_ratio_no_notify: r2(busyTracked / busyUntracked),
  };
}
