// Scaling: the same sizes.scaleEvents events to the same webhook and receiver through 1, 2 and
// 4 dispatcher processes against one Postgres, each count started afresh. Per run: deliveries/s
// (first insert → last recorded finish), the dispatchers' CPU seconds and the bench database's
// backends' CPU seconds per 1,000 deliveries, and the connections each process holds.
import {
  BackendCpu, DispatcherProc, connectionsPerProcess, insertEvents, machineCpuBusy, postgresCpuSeconds, r2, resetDeliveries, settled, sleep,
  type Bench, type ReceiverProc,
} from "../harness";

export const SCALE_PROCESSES = [1, 2, 4] as const;

async function run(b: Bench, receiver: ReceiverProc, processes: number) {
  const { sql } = b;
  const n = b.sizes.scaleEvents;
  await resetDeliveries(sql);
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
    const dCpu = dCpuEach.reduce((a, x) => a + x, 0);
    const seconds = (last.getTime() - t0!.t.getTime()) / 1000;
    return {
      processes,
      events: n,
      seconds: r2(seconds),
      deliveries_per_s: Math.round(n / seconds),
      dispatcher_cpu_s: r2(dCpu),
      dispatcher_cpu_s_each: dCpuEach.map(r2),
      postgres_cpu_s: r2(pgCpu.backends),
      postgres_shared_cpu_s: r2(pgCpu.shared),
      postgres_host_cpu_s: r2(hostPgCpu),
      dispatcher_cpu_s_per_1000: r2((dCpu / n) * 1000),
      postgres_cpu_s_per_1000: r2((pgCpu.backends / n) * 1000),
      postgres_shared_cpu_s_per_1000: r2((pgCpu.shared / n) * 1000),
      connections_per_process: connections,
      machine_cpu_busy: cpuBusy(),
    };
  } finally {
    await Promise.all(ds.map((d) => d.stop()));
  }
}

/** Needs no other dispatcher running: each run starts its own. */
export async function scale(b: Bench, receiver: ReceiverProc) {
  const runs = [];
  for (const p of SCALE_PROCESSES) runs.push(await run(b, receiver, p));
  const one = runs[0]!.deliveries_per_s;
  return {
    scale: Object.fromEntries(runs.map((r) => [`p${r.processes}`, r])) as Record<`p${(typeof SCALE_PROCESSES)[number]}`, (typeof runs)[number]>,
    scale_ratio_2: r2(runs[1]!.deliveries_per_s / one),
    scale_ratio_4: r2(runs[2]!.deliveries_per_s / one),
  };
}
