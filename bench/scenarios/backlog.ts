// Backlog: sizes.backlog events inserted with no dispatcher running, then a fresh dispatcher
// drains them; its time, rate, memory over time and CPU. Full mode caps the drain so the whole
// run stays under 10 minutes; a capped drain is reported as incomplete with the rate it reached.
import { DispatcherProc, insertEvents, log, machineCpuBusy, now, r2, resetDeliveries, settled, type Bench, type ReceiverProc } from "../harness";

export async function backlog(b: Bench, receiver: ReceiverProc) {
  const { sql } = b;
  await resetDeliveries(sql);
  const n = b.sizes.backlog;
  const ti = now();
  await insertEvents(sql, n, 30_000_000, 20_000);
  log(`backlog: ${n} events inserted in ${Math.round(now() - ti)} ms; starting the dispatcher`);
  await sql`vacuum analyze webhooks.outbox`;
  await receiver.reset();
  const t0 = now();
  const cpuBusy = machineCpuBusy();
  const d = DispatcherProc.start(b);
  const capMs = b.backlogCapMs;
  let delivered = n;
  let dcpu = NaN;
  try {
    try {
      await receiver.waitFor(n, capMs, "backlog drain");
      await settled(sql, n, 60_000, "backlog drain");
    } catch (e) {
      if (b.smoke) throw e;
      delivered = (await receiver.stats()).count;
      log(`backlog: drain cut at ${capMs / 1000} s with ${delivered}/${n} delivered`);
    }
  } finally {
    d.sampleRss();
    dcpu = d.cpuSeconds();
    await d.stop();
  }
  const drain_s = (now() - t0) / 1000;
  const machine_cpu_busy = cpuBusy();
  return {
    backlog: {
      events: n,
      drain_s: delivered === n ? r2(drain_s) : null,
      ...(delivered === n ? {} : { incomplete: true, delivered, cut_at_s: r2(drain_s), estimated_drain_s: r2(n / (delivered / drain_s)) }),
      per_s: Math.round(delivered / drain_s),
      peak_rss_mb: r2(d.peakRssKb / 1024),
      rss_mb_every_5s: d.rssTimelineMb,
      machine_cpu_busy,
      dispatcher_cpu_s: r2(dcpu),
    },
  };
}
