// Backlog: n events inserted into the tracked table with no dispatcher running, then a fresh
// dispatcher drains them. Drain time counts from its registration to the last receipt; its
// memory is sampled every second (start, peak, end). Run for sizes.backlog and for
// sizes.backlogLarge, the two rates compare (backlog_ratio). The drain is cut after
// backlogCapMs × n / sizes.backlog and then reported as incomplete with the rate it reached.
import { DispatcherProc, insertEvents, log, machineCpuBusy, now, r2, resetDeliveries, settled, type Bench, type ReceiverProc } from "../harness";

/** Every 5th sample of a once-a-second timeline, to keep the report short. */
const every5 = (mb: number[]) => mb.filter((_, i) => i % 5 === 0);

export async function backlog(b: Bench, receiver: ReceiverProc, n: number) {
  const { sql } = b;
  await sql`truncate bench_tracked`; // the same table size for every backlog (its truncate may be an event itself: cleared next)
  await resetDeliveries(sql);
  const ti = now();
  await insertEvents(sql, n, 30_000_000, 20_000);
  const insertMs = now() - ti;
  log(`backlog: ${n} events inserted in ${Math.round(insertMs)} ms; starting the dispatcher`);
  await sql`vacuum analyze webhooks.outbox`;
  await receiver.reset();
  const cpuBusy = machineCpuBusy();
  const spawned = now();
  const d = DispatcherProc.start(b);
  const capMs = (b.backlogCapMs * n) / b.sizes.backlog;
  let delivered = n;
  let dcpu = NaN;
  let t0 = spawned;
  let lastAt = NaN;
  let startRssKb = 0;
  try {
    await d.ready(sql);
    t0 = now();
    d.sampleRss();
    startRssKb = d.lastRssKb;
    try {
      lastAt = (await receiver.waitFor(n, capMs, "backlog drain")).lastAt;
      await settled(sql, n, 60_000, "backlog drain");
    } catch (e) {
      if (b.smoke) throw e;
      const s = await receiver.stats();
      delivered = s.count;
      lastAt = now();
      log(`backlog: drain cut at ${r2(capMs / 1000)} s with ${delivered}/${n} delivered`);
    }
  } finally {
    d.sampleRss();
    dcpu = d.cpuSeconds();
    await d.stop();
  }
  const drain_s = (lastAt - t0) / 1000;
  const complete = delivered === n;
  return {
    events: n,
    insert_s: r2(insertMs / 1000),
    startup_s: r2((t0 - spawned) / 1000),
    drain_s: complete ? r2(drain_s) : null,
    ...(complete ? {} : { incomplete: true, delivered, cut_at_s: r2(drain_s), estimated_drain_s: r2(n / (delivered / drain_s)) }),
    per_s: Math.round(delivered / drain_s),
    rss_mb: { start: r2(startRssKb / 1024), peak: r2(d.peakRssKb / 1024), end: r2(d.lastRssKb / 1024) },
    rss_mb_every_5s: every5(d.rssTimelineMb),
    machine_cpu_busy: cpuBusy(),
    dispatcher_cpu_s: r2(dcpu),
    dispatcher_cpu_s_per_1000: r2((dcpu / delivered) * 1000),
  };
}
