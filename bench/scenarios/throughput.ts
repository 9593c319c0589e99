// Delivery throughput: sizes.events deliveries through the running dispatcher, from the first
// insert to the last recorded finish, against the same bodies POSTed raw with undici at the
// same concurrency to the same receiver (the baseline, measured right after).
import { request, Agent } from "undici";
import {
  BackendCpu, RAW_CONCURRENCY, assert, insertEvents, machineCpuBusy, now, r2, resetDeliveries, settled,
  type Bench, type DispatcherProc, type ReceiverProc,
} from "../harness";

export async function deliveryThroughput(b: Bench, receiver: ReceiverProc, d: DispatcherProc) {
  const { sql } = b;
  await resetDeliveries(sql);
  await receiver.reset();
  const cpuBusy = machineCpuBusy();
  const dcpu0 = d.cpuSeconds();
  const pg = await BackendCpu.start(sql);
  const n = b.sizes.events;
  const [t0row] = await sql<{ t: Date }[]>`select clock_timestamp() as t`;
  const wall0 = now();
  await insertEvents(sql, n, 0, 500);
  const insertedMs = now() - wall0;
  await receiver.waitFor(n, b.smoke ? 60_000 : 300_000, "delivery throughput");
  const last = await settled(sql, n, 60_000, "delivery throughput");
  const seconds = (last.getTime() - t0row!.t.getTime()) / 1000;
  const deliveries_per_s = n / seconds;
  const machine_cpu_busy = cpuBusy();
  const dispatcher_cpu_s = r2(d.cpuSeconds() - dcpu0);
  const pgCpu = await pg.stop();

  // Baseline: the very bodies the dispatcher sent, POSTed raw with undici at RAW_CONCURRENCY.
  const bodies = (await sql<{ b: string }[]>`select coalesce(a.request_body, d.body) as b from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id order by a.id`).map((r) => r.b);
  assert(bodies.length === n, `expected ${n} recorded attempts, found ${bodies.length}`);
  await receiver.reset();
  const agent = new Agent({ connections: RAW_CONCURRENCY });
  let next = 0;
  const rawCpuBusy = machineCpuBusy();
  const rt0 = now();
  await Promise.all(
    Array.from({ length: RAW_CONCURRENCY }, async () => {
      for (let i = next++; i < bodies.length; i = next++) {
        const res = await request(receiver.url + "/raw", {
          method: "POST",
          body: bodies[i],
          headers: { "content-type": "application/json" },
          dispatcher: agent,
        });
        await res.body.dump();
        assert(res.statusCode === 200, `raw POST answered ${res.statusCode}`);
      }
    }),
  );
  const rawSeconds = (now() - rt0) / 1000;
  const raw_cpu_busy = rawCpuBusy();
  await agent.close();
  const s = await receiver.stats();
  assert(s.count === n, `raw baseline: receiver saw ${s.count} of ${n}`);
  const raw_per_s = n / rawSeconds;
  return {
    deliveries_per_s: Math.round(deliveries_per_s),
    raw_per_s: Math.round(raw_per_s),
    throughput_ratio: r2(deliveries_per_s / raw_per_s),
    throughput: { events: n, seconds: r2(seconds), insert_ms: Math.round(insertedMs), raw_concurrency: RAW_CONCURRENCY,
      machine_cpu_busy, dispatcher_cpu_s,
      postgres_cpu_s: r2(pgCpu.backends), postgres_shared_cpu_s: r2(pgCpu.shared), raw_machine_cpu_busy: raw_cpu_busy },
  };
}
