// Backlog: n events inserted into the tracked table with no dispatcher running, then a fresh
// dispatcher drains them. Drain time counts from its registration to the last receipt; its
// memory is sampled every second (start, peak, end), the receiver's count too (the rate in each
// fifth of the drain), and the CPU of the dispatcher and of the database's backends. Run for
// sizes.backlog and for sizes.backlogLarge, the two rates compare (backlog_ratio). The drain is
// cut after backlogCapMs × n / sizes.backlog and then reported as incomplete with its rate.
import {
  BackendCpu, DispatcherProc, insertEvents, log, machineCpuBusy, now, r2, resetDeliveries, settled, sleep, type Bench, type ReceiverProc,
} from "../harness";

/** Every 5th sample of a once-a-second timeline, to keep the report short. */
const every5 = (mb: number[]) => mb.filter((_, i) => i % 5 === 0);

/**
 * Waits until the receiver has n requests or the cap passes, noting (time, count) each second.
 * Returns the samples and the last receipt's time (NaN when cut).
 */
async function drain(receiver: ReceiverProc, n: number, capMs: number) {
  const samples: [number, number][] = [];
  const deadline = now() + capMs;
  let nextSample = 0;
  for (;;) {
    const s = await receiver.stats();
    if (now() >= nextSample || s.count >= n) {
      samples.push([now(), s.count]);
      nextSample = now() + 1000;
    }
    if (s.count >= n) return { samples, lastAt: s.lastAt, count: s.count };
    if (now() > deadline) return { samples, lastAt: NaN, count: s.count };
    await sleep(50);
  }
}

/**
 * Deliveries/s in each fifth of the events, from the once-a-second samples (t0: the drain's
 * start); null for a fifth that ended within the same sample as the one before (small runs).
 */
function ratesByFifth(samples: [number, number][], t0: number, n: number): (number | null)[] {
  const rates: (number | null)[] = [];
  let from: [number, number] = [t0, 0];
  for (let k = 1; k <= 5; k++) {
    const at = samples.find(([, c]) => c >= (n * k) / 5);
    if (!at) break;
    rates.push(at === from ? null : Math.round((at[1] - from[1]) / ((at[0] - from[0]) / 1000)));
    from = at;
  }
  return rates;
}

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
  const pg = await BackendCpu.start(sql);
  const spawned = now();
  const d = DispatcherProc.start(b);
  const capMs = (b.backlogCapMs * n) / b.sizes.backlog;
  let delivered = n;
  let dcpu = NaN;
  let t0 = spawned;
  let lastAt = NaN;
  let startRssKb = 0;
  let samples: [number, number][] = [];
  let pgCpu = { backends: NaN, shared: NaN };
  try {
    await d.ready(sql);
    t0 = now();
    d.sampleRss();
    startRssKb = d.lastRssKb;
    const r = await drain(receiver, n, capMs);
    samples = r.samples;
    if (r.count >= n) {
      lastAt = r.lastAt;
      await settled(sql, n, 60_000, "backlog drain");
    } else {
      if (b.smoke) throw new Error(`backlog drain: ${r.count}/${n} received within ${capMs} ms`);
      delivered = r.count;
      lastAt = now();
      log(`backlog: drain cut at ${r2(capMs / 1000)} s with ${delivered}/${n} delivered`);
    }
  } finally {
    d.sampleRss();
    dcpu = d.cpuSeconds();
    pgCpu = await pg.stop();
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
    per_s_by_fifth: ratesByFifth(samples, t0, n),
    rss_mb: { start: r2(startRssKb / 1024), peak: r2(d.peakRssKb / 1024), end: r2(d.lastRssKb / 1024) },
    rss_mb_every_5s: every5(d.rssTimelineMb),
    machine_cpu_busy: cpuBusy(),
    dispatcher_cpu_s: r2(dcpu),
    dispatcher_cpu_s_per_1000: r2((dcpu / delivered) * 1000),
    postgres_cpu_s: r2(pgCpu.backends),
    postgres_cpu_s_per_1000: r2((pgCpu.backends / delivered) * 1000),
    postgres_shared_cpu_s: r2(pgCpu.shared),
  };
}
