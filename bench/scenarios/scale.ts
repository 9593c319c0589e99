// Scaling: the same sizes.scaleEvents events to the same webhook and receiver through 1, 2 and
// 4 dispatcher processes against one Postgres, each run started afresh, in the order 1, 2, 4,
// 4, 2, 1. Per count: deliveries/s (first insert → last recorded finish), the dispatchers' CPU
// seconds and the bench database's backends' CPU seconds per 1,000 deliveries, and the
// connections each process holds.
import { DEFAULTS } from "../../src/config";
import {
  BackendCpu, assert, DispatcherProc, connectionsPerProcess, insertEvents, machineCpuBusy, postgresCpuSeconds, r2, resetDeliveries, settled, sleep,
  type Bench, type ReceiverProc,
} from "../harness";

export const SCALE_PROCESSES = [1, 2, 4] as const;

/** Refuses to start `processes` dispatchers the server has no connection slots for (each opens WEBHOOKS_DB_POOL_SIZE). */
async function assertSlots(b: Bench, processes: number): Promise<void> {
  const need = processes * DEFAULTS.WEBHOOKS_DB_POOL_SIZE;
  const [r] = await b.sql<{ free: number; max: number }[]>`
    select current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
             - (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as free,
           current_setting('max_connections')::int as max`;
  assert(
    r!.free >= need + 2,
    `scale: ${processes} dispatchers open up to ${need} connections, but the server has ${r!.free} free (max_connections ${r!.max}); ` +
      "stop other clients or raise max_connections",
  );
}

async function run(b: Bench, receiver: ReceiverProc, processes: number) {
  const { sql } = b;
  const n = b.sizes.scaleEvents;
  await resetDeliveries(sql);
  await assertSlots(b, processes);
  const ds = Array.from({ length: processes }, () => DispatcherProc.start(b));
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
    const hostPg0 = postgresCpuSeconds();
    const [t0] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
    try {
      await insertEvents(sql, n, 50_000_000 + processes * 1_000_000, 500);
      await receiver.waitFor(n, b.smoke ? 60_000 : 300_000, `scale (${processes} dispatchers)`);
    } finally {
      clearInterval(sampler);
    }
    const last = await settled(sql, n, 60_000, `scale (${processes} dispatchers)`);
    const pgCpu = await pg.stop();
    const hostPgCpu = postgresCpuSeconds() - hostPg0;
    const dCpuEach = ds.map((d, i) => d.cpuSeconds() - dcpu0[i]!);
    return {
      seconds: (last.getTime() - t0!.t.getTime()) / 1000,
      dispatcherCpu: dCpuEach.reduce((a, x) => a + x, 0),
      dispatcherCpuEach: dCpuEach,
      postgresCpu: pgCpu.backends,
      postgresSharedCpu: pgCpu.shared,
      postgresHostCpu: hostPgCpu,
      connections,
      busy: cpuBusy(),
    };
  } finally {
    await Promise.all(ds.map((d) => d.stop()));
  }
}

/**
 * Needs no other dispatcher running: each run starts its own. The counts run 1, 2, 4, 4, 2, 1
 * so that drift in the machine's speed falls on each alike; each count's figures are over its
 * two runs together.
 */
export async function scale(b: Bench, receiver: ReceiverProc) {
  const order = [...SCALE_PROCESSES, ...[...SCALE_PROCESSES].reverse()];
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
      postgres_host_cpu_s: r2(sum((r) => r.postgresHostCpu)),
      dispatcher_cpu_s_per_1000: per1000(sum((r) => r.dispatcherCpu)),
      postgres_cpu_s_per_1000: per1000(sum((r) => r.postgresCpu)),
      postgres_shared_cpu_s_per_1000: per1000(sum((r) => r.postgresSharedCpu)),
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
