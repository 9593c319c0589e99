// Scaling: the same sizes.scaleEvents events to the same webhook and receiver through 1, 2 and
// 4 dispatcher processes against one Postgres, each run started afresh, in the order 1, 2, 4,
// 4, 2, 1. Per count: deliveries/s (first insert → last recorded finish), the dispatchers' CPU
// seconds and the bench database's backends' CPU seconds per 1,000 deliveries, and the
// connections each process holds.
import { DEFAULTS } from "../../src/config";
import {
  BackendCpu, assert, DispatcherProc, log, connectionsPerProcess, insertEvents, machineCpuBusy, r2, resetDeliveries, settled, sleep,
  type Bench, type ReceiverProc,
} from "../harness";

export const SCALE_PROCESSES = [1, 2, 4] as const;

/** Connection slots the server has free now, and its max_connections. */
async function freeSlots(b: Bench): Promise<{ free: number; max: number }> {
  const [r] = await b.sql<{ free: number; max: number }[]>`
    select current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
             - (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as free,
           current_setting('max_connections')::int as max`;
  return r!;
}

/**
 * The pool size each of `processes` dispatchers gets: the default WEBHOOKS_DB_POOL_SIZE once
 * the server has the slots for all of them (waiting up to 60 s for other clients to leave),
 * else what the free slots allow (at least 4), so a server shared with other clients still
 * runs the scenario; the figures say which it was (pool_size).
 */
async function poolSize(b: Bench, processes: number): Promise<number> {
  const fits = (free: number) => Math.floor((free - 4) / processes);
  const deadline = Date.now() + 60_000;
  let r = await freeSlots(b);
  while (fits(r.free) < DEFAULTS.WEBHOOKS_DB_POOL_SIZE && Date.now() < deadline) {
    await sleep(1000);
    r = await freeSlots(b);
  }
  const size = Math.min(DEFAULTS.WEBHOOKS_DB_POOL_SIZE, fits(r.free));
  assert(size >= 4, `scale: ${processes} dispatchers need at least ${4 * processes + 4} free connections, but the server has ${r.free} (max_connections ${r.max})`);
  if (size < DEFAULTS.WEBHOOKS_DB_POOL_SIZE) {
    log(`scale: only ${r.free} connection slots free; ${processes} dispatchers get WEBHOOKS_DB_POOL_SIZE=${size} instead of ${DEFAULTS.WEBHOOKS_DB_POOL_SIZE}`);
  }
  return size;
}

async function run(b: Bench, receiver: ReceiverProc, processes: number) {
  const { sql } = b;
  const n = b.sizes.scaleEvents;
  await resetDeliveries(sql);
  const pool = await poolSize(b, processes);
  const ds = Array.from({ length: processes }, () => DispatcherProc.start(b, { WEBHOOKS_DB_POOL_SIZE: String(pool) }));
  try {
    await Promise.all(ds.map((d) => d.ready(sql)));
    await sleep(1500); // every pool opened, every dispatcher idle
    await receiver.reset();
    const connections = ds.map(() => 0);
    const countConnections = async () => {
      const c = await connectionsPerProcess(sql, b.url, ds.map((d) => d.child.pid!));
      c.forEach((x, i) => (connections[i] = Math.max(connections[i]!, x)));
    };
    await countConnections();
    const sampler = setInterval(() => void countConnections().catch(() => {}), 1000);
    const cpuBusy = machineCpuBusy();
    const dcpu0 = ds.map((d) => d.cpuSeconds());
    const pg = await BackendCpu.start(sql);
    const [t0] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
    try {
      await insertEvents(sql, n, 50_000_000 + processes * 1_000_000, 500);
      await receiver.waitFor(n, b.smoke ? 60_000 : 300_000, `scale (${processes} dispatchers)`);
    } finally {
      clearInterval(sampler);
    }
    const last = await settled(sql, n, 60_000, `scale (${processes} dispatchers)`);
    const pgCpu = await pg.stop();
    const dCpuEach = ds.map((d, i) => d.cpuSeconds() - dcpu0[i]!);
    return {
      pool,
      seconds: (last.getTime() - t0!.t.getTime()) / 1000,
      dispatcherCpu: dCpuEach.reduce((a, x) => a + x, 0),
      dispatcherCpuEach: dCpuEach,
      postgresCpu: pgCpu.backends,
      postgresSharedCpu: pgCpu.shared,
      connections,
      busy: cpuBusy(),
    };
  } finally {
    await Promise.all(ds.map((d) => d.stop()));
  }
}

/**
 * Needs no other dispatcher running: each run starts its own. The counts run 1, 2, 4, 4, 2, 1
 * (the smoke run: 1, 2, 4) so that drift in the machine's speed falls on each alike; each
 * count's figures are over its runs together.
 */
export async function scale(b: Bench, receiver: ReceiverProc) {
  // The smoke run checks correctness only: each count once.
  const order = b.smoke ? [...SCALE_PROCESSES] : [...SCALE_PROCESSES, ...[...SCALE_PROCESSES].reverse()];
  const runs: { processes: number; r: Awaited<ReturnType<typeof run>> }[] = [];
  for (const p of order) runs.push({ processes: p, r: await run(b, receiver, p) });
  const figures = SCALE_PROCESSES.map((processes) => {
    const mine = runs.filter((x) => x.processes === processes).map((x) => x.r);
    const sum = (f: (r: (typeof mine)[number]) => number) => mine.reduce((a, r) => a + f(r), 0);
    const events = b.sizes.scaleEvents * mine.length;
    const seconds = sum((r) => r.seconds);
    const per1000 = (cpu: number) => r2((cpu / events) * 1000);
    return {
      processes,
      events,
      seconds: r2(seconds),
      deliveries_per_s: Math.round(events / seconds),
      deliveries_per_s_each_run: mine.map((r) => Math.round(b.sizes.scaleEvents / r.seconds)),
      dispatcher_cpu_s: r2(sum((r) => r.dispatcherCpu)),
      dispatcher_cpu_s_each_process: mine.map((r) => r.dispatcherCpuEach.map(r2)),
      postgres_cpu_s: r2(sum((r) => r.postgresCpu)),
      postgres_shared_cpu_s: r2(sum((r) => r.postgresSharedCpu)),
      dispatcher_cpu_s_per_1000: per1000(sum((r) => r.dispatcherCpu)),
      postgres_cpu_s_per_1000: per1000(sum((r) => r.postgresCpu)),
      postgres_shared_cpu_s_per_1000: per1000(sum((r) => r.postgresSharedCpu)),
      pool_size: mine.map((r) => r.pool),
      connections_per_process: mine[0]!.connections.map((c, i) => Math.max(c, ...mine.map((r) => r.connections[i] ?? 0))),
      machine_cpu_busy: mine.map((r) => r.busy),
    };
  });
  const one = figures[0]!.deliveries_per_s;
  return {
    scale: { p1: figures[0]!, p2: figures[1]!, p4: figures[2]! },
    scale_ratio_2: r2(figures[1]!.deliveries_per_s / one),
    scale_ratio_4: r2(figures[2]!.deliveries_per_s / one),
  };
}
