// Lanes: the dispatcher's in-memory send queues, one per webhook. A deliver job only claims
// its deliveries and hands them to their webhook's lane, so a slow or dead endpoint holds no
// worker slot and no database connection: it only fills its own lane, and a full lane
// pushes further work back into the job queue. Each lane keeps at most `max_in_flight`
// requests open (starting at one and doubling on success, halving on failure), spaces
// requests by `rate_limit_per_s`, and stops at once on a 410 or a run of failures. Results
// from all lanes are recorded together in bulk by one recorder.
//
// Settings are live: every delivery carries its webhook's settings with their version
// (settings_version), a lane keeps the newest copy it has seen and puts it on everything it
// holds, and a NOTIFY from the database on each change makes the lanes re-read it (refresh).
//
// The limits hold for the webhook as a whole, across dispatchers: a lane sends only within the
// share of them it has leased (grants.ts), and its window and rate spacing apply within it.
import { setTimeout as sleep } from "node:timers/promises";
import type { DeliverContext } from "./context";
import { enqueueDeliveries } from "./jobs";
import { claim, readSendSettings, settingsOf, type ClaimedDelivery, type SendSettings } from "./claim";
import { createRecorder } from "./record";
import { createGrantKeeper, type GrantHolder } from "./grants";
import type { LeaseOffer } from "./fanout";
import { send, type Recorded } from "./send";
import { DEFAULT_BREAKER, breakerFor, disablingResponse, tripped, type BreakerSettings } from "../model/circuit";
import {
  INITIAL_WINDOW,
  TOTAL_QUEUE_CAP,
  drainsSoon,
  fanoutRoom,
  laneCap,
  nextWindow,
  openLimit,
  putBackDelayMs,
  startDelayMs,
  totalRoom,
  waitEstimateMs,
} from "../model/window";
import { NO_GRANT, type Limits, type LocalGrant } from "../model/grant";
import { timerMs } from "../util/timer";

/** A job waits this long at most for room in a lane that is moving; else it is put back. */
const ROOM_WAIT_MS = 3000;
/** A lane with requests open this long and nothing finishing is stuck: nobody waits on it. */
const STUCK_MS = 1000;
/** A lane idle this long is forgotten (its window starts from one again). */
const LANE_IDLE_MS = 60_000;

interface Item {
  d: ClaimedDelivery;
  probe: boolean;
}

type StopCause = "circuit" | "disabled";

class Lane implements GrantHolder {
  queue: Item[] = [];
  inFlight = 0;
  window = INITIAL_WINDOW;
  failures = 0;
  stop: { cause: StopCause; flushed: Promise<void>; done: boolean } | null = null;
  maxInFlight = 10;
  ratePerS: number | null = null;
  /** The newest copy of the webhook's settings seen (a claim, fanout or refresh). */
  settings: SendSettings | null = null;
  lastStartAt = -Infinity;
  timer: NodeJS.Timeout | null = null;
  avgMs = 50;
  lastActive = Date.now();
  lastResultAt = 0;
  readonly starts = new Map<Item, number>();
  /** This dispatcher's share of the webhook's limits (grants.ts). */
  grant: LocalGrant = NO_GRANT;
  renewing = false;

  constructor(readonly id: string) {}

  limits(): Limits | null {
    return this.settings ? { maxInFlight: this.maxInFlight, ratePerS: this.ratePerS } : null;
  }

  /** Requests it could keep open now: in flight and queued (behind a stop, only probes), up to max_in_flight. */
  wants(): number {
    const queued = this.stop ? this.queue.filter((i) => i.probe).length : this.queue.length;
    return Math.min(this.maxInFlight, this.inFlight + queued);
  }

  idleMs(now: number): number {
    return this.queue.length > 0 || this.inFlight > 0 ? 0 : Math.max(0, now - this.lastActive);
  }

  get cap(): number {
    return laneCap(this.maxInFlight);
  }

  /** Roughly how long until `n` more items fit, judging by how long requests take now. */
  waitEstimateMs(n: number, now: number): number {
    let perRequest = this.avgMs;
    for (const started of this.starts.values()) perRequest = Math.max(perRequest, now - started);
    return waitEstimateMs(this.queue.length, n, this.cap, perRequest, openLimit(this.window, this.maxInFlight));
  }

  /** Requests open for a second with nothing finishing: the endpoint is slow or hanging. */
  stuck(now: number): boolean {
    if (now - this.lastResultAt < STUCK_MS) return false;
    for (const started of this.starts.values()) if (now - started > STUCK_MS) return true;
    return false;
  }

}

export interface Engine {
  /** Claims these deliveries (all of webhook `webhookId`) and queues them in its lane; returns once they are queued. */
  admit(ids: string[], webhookId: string): Promise<void>;
  /** How many more deliveries the lanes take now without a claim: what fanout may lease to them. */
  offer(): LeaseOffer;
  /** Queues deliveries already leased to this dispatcher (by fanout). */
  take(deliveries: ClaimedDelivery[]): void;
  /** Re-reads these webhooks' settings (every lane's when absent) and applies them to what is queued. */
  refresh(webhookIds?: string[]): Promise<void>;
  /** Stops sending: queued deliveries are released to other dispatchers, in-flight ones finish within the grace. */
  close(graceMs: number): Promise<void>;
}

export function createEngine(ctx: DeliverContext, owner: string, settings: BreakerSettings = ctx.breaker ?? DEFAULT_BREAKER): Engine {
  const lanes = new Map<string, Lane>();
  const thresholdOf = (l: Lane): number => breakerFor(settings, l.settings?.breaker_threshold).threshold;
  const bodies = new Map<string, string>();
  const recorder = createRecorder(ctx, owner, settings);
  let closed = false;
  let total = 0;
  const totalWaiters: (() => void)[] = [];
  const grants = createGrantKeeper({
    sql: ctx.conn.sql,
    owner,
    logger: ctx.logger,
    holders: () => lanes.values(),
    changed: (l: Lane) => {
      // A rate wait was timed for the old share; pump times it again.
      if (l.timer) {
        clearTimeout(l.timer);
        l.timer = null;
      }
      pump(l);
    },
  });

  const lane = (id: string): Lane => {
    let l = lanes.get(id);
    if (!l) {
      l = new Lane(id);
      lanes.set(id, l);
    }
    return l;
  };

  // ---- sending -----------------------------------------------------------------------
  const stopLane = (l: Lane, cause: StopCause): void => {
    if (l.stop) return;
    // What is queued goes back: behind an open circuit it is parked; for a disabled webhook
    // it gets a job again, which fails it once the webhook is disabled in the same flush.
    const queued = l.queue.filter((i) => !i.probe);
    l.queue = l.queue.filter((i) => i.probe);
    total -= queued.length;
    if (cause === "circuit") recorder.park(queued.map((i) => i.d.id));
    else recorder.release(queued.map((i) => ({ id: i.d.id, subscription_id: i.d.subscription_id })));
    const stop = { cause, flushed: recorder.flush(), done: false };
    void stop.flushed.then(() => (stop.done = true));
    l.stop = stop;
    wakeTotal();
  };

  const onResult = (l: Lane, item: Item, r: Recorded): void => {
    l.inFlight--;
    l.starts.delete(item);
    l.lastActive = l.lastResultAt = Date.now();
    l.avgMs = l.avgMs * 0.8 + r.outcome.durationMs * 0.2;
    recorder.add(r);
    // A share lowered while requests were open is given back as they finish.
    if (l.grant.dbSlots > l.grant.slots && l.inFlight <= l.grant.slots) grants.renew(l);
    if (r.outcome.ok) {
      l.failures = 0;
      l.window = nextWindow(l.window, true, l.maxInFlight);
    } else if (!r.unsent) {
      // (An unsent delivery could not even be built: it says nothing about the endpoint.)
      l.failures++;
      l.window = nextWindow(l.window, false, l.maxInFlight);
      if (disablingResponse(r.outcome)) stopLane(l, "disabled");
      else if (tripped(l.failures, thresholdOf(l)) && !item.probe) stopLane(l, "circuit");
    }
    pump(l);
  };

  const pump = (l: Lane): void => {
    if (closed) return;
    // Nothing is sent without a share of the webhook's limits; none is changed mid-send.
    if (!l.grant.held && !l.renewing && l.wants() > 0) grants.renew(l);
    if (l.renewing) return;
    while (l.queue.length > 0 && l.inFlight < openLimit(l.window, l.maxInFlight, l.grant.slots)) {
      const idx = l.stop ? l.queue.findIndex((i) => i.probe) : 0;
      if (idx < 0) return;
      if (l.ratePerS !== null) {
        // Spaced by this dispatcher's share of the rate (none yet: wait for one).
        const rate = l.grant.rate;
        if (rate === null || rate <= 0) return;
        const now = Date.now();
        const wait = startDelayMs(rate, l.lastStartAt, now);
        if (wait > 0) {
          l.timer ??= setTimeout(() => {
            l.timer = null;
            pump(l);
          }, timerMs(wait));
          return;
        }
        l.lastStartAt = now;
      }
      const [item] = l.queue.splice(idx, 1);
      if (!item) return;
      total--;
      l.inFlight++;
      l.lastActive = Date.now();
      // (With a rate limit, set above; also kept without one, for a limit that appears later.)
      if (l.ratePerS === null) l.lastStartAt = l.lastActive;
      l.starts.set(item, l.lastActive);
      void send(ctx, item.d, bodies).then((r) => {
        if (bodies.size > 10_000) bodies.clear();
        onResult(l, item, r);
      });
      wakeTotal();
    }
  };

  // ---- admission ---------------------------------------------------------------------
  const wakeTotal = (): void => {
    if (total < TOTAL_QUEUE_CAP) for (const w of totalWaiters.splice(0)) w();
  };

  const putBack = async (ids: string[], webhookId: string, afterMs: number): Promise<void> => {
    ctx.logger.debug({ webhook: webhookId, deliveries: ids.length, afterMs: Math.round(afterMs) }, "lane full; deliveries wait in the job queue");
    await enqueueDeliveries(
      ctx.conn.sql,
      ids.map((id) => ({ id, subscription_id: webhookId })),
      new Date(Date.now() + afterMs),
    );
  };

  const waitFor = (register: (resolve: () => void) => void, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timerMs(ms));
      register(() => {
        clearTimeout(t);
        resolve(true);
      });
    });

  /** Waits for room in a lane while it keeps moving; false when it is stuck or too slow. */
  const roomIn = async (l: Lane, n: number): Promise<boolean> => {
    const until = Date.now() + ROOM_WAIT_MS;
    for (;;) {
      const now = Date.now();
      if (l.queue.length + n <= l.cap) return true;
      if (closed || l.stuck(now) || now >= until) return false;
      await sleep(20);
    }
  };

  const admit = async (ids: string[], webhookId: string): Promise<void> => {
    if (ids.length === 0) return;
    if (closed) throw new Error("dispatcher is stopping");
    const l = lanes.get(webhookId);
    // A lane that has just stopped: let the flush that records why land first, so the
    // claim below sees the circuit or the disabled webhook.
    if (l?.stop) await l.stop.flushed;
    if (l && l.queue.length + ids.length > l.cap && !(await roomIn(l, ids.length))) {
      // A slow or hanging endpoint: the work waits in the job queue, not in a worker.
      const now = Date.now();
      const after = putBackDelayMs(l.stuck(now), l.waitEstimateMs(ids.length, now));
      await putBack(ids, webhookId, after);
      return;
    }
    if (total >= TOTAL_QUEUE_CAP && !(await waitFor((r) => totalWaiters.push(r), ROOM_WAIT_MS))) {
      await putBack(ids, webhookId, 1000);
      return;
    }
    const c = await ctx.conn.sql.begin((tx) => claim(tx, ids, owner, {}, settings));
    if (c.parked > 0) ctx.logger.debug({ parked: c.parked }, "deliveries wait for an open circuit");
    queueClaimed(c.send, c.probeIds);
  };

  /** Takes a newer copy of a webhook's settings: the lane's limits and every queued delivery follow it. */
  const adopt = (l: Lane, s: SendSettings): void => {
    if (l.settings !== null && s.settings_version <= l.settings.settings_version) return;
    const first = l.settings === null;
    const limitsChanged = !first && (l.maxInFlight !== s.max_in_flight || l.ratePerS !== s.rate_limit_per_s);
    l.settings = settingsOf(s);
    l.maxInFlight = s.max_in_flight;
    if (l.ratePerS !== s.rate_limit_per_s && l.timer) {
      // The wait was timed for the old rate; pump again times it for the new one.
      clearTimeout(l.timer);
      l.timer = null;
    }
    l.ratePerS = s.rate_limit_per_s;
    // New limits: every dispatcher re-caps its share at once (each hears the same NOTIFY).
    if (limitsChanged && l.grant.held) grants.renew(l);
    if (first) return;
    for (const item of l.queue) item.d = { ...item.d, ...l.settings };
  };

  const queueClaimed = (send: ClaimedDelivery[], probeIds: ReadonlySet<string>): void => {
    for (const raw of send) {
      const l = lane(raw.subscription_id);
      adopt(l, raw);
      // Read before a change this lane has already heard of: send with the newer settings.
      const d = l.settings && raw.settings_version < l.settings.settings_version ? { ...raw, ...l.settings } : raw;
      const probe = probeIds.has(d.id);
      if (!probe && l.stop) {
        // The database says the circuit is closed and the webhook active: go again.
        l.stop = null;
        l.failures = 0;
      }
      if (probe) l.queue.unshift({ d, probe });
      else l.queue.push({ d, probe });
      total++;
    }
    for (const l of new Set(send.map((d) => lanes.get(d.subscription_id)))) if (l) pump(l);
  };

  const offer = (): LeaseOffer => {
    const room = new Map<string, number>();
    const soon = new Set<string>();
    if (closed) return { owner, capacity: 0, room, soon };
    const now = Date.now();
    // A lane stopped here (410, a run of failures) or stuck: jobs and their claim decide.
    for (const [id, l] of lanes) {
      const usable = !l.stop && !l.stuck(now);
      room.set(id, usable ? fanoutRoom(l.maxInFlight, l.queue.length) : 0);
      if (usable && drainsSoon(l.avgMs, openLimit(l.window, l.maxInFlight))) soon.add(id);
    }
    return { owner, capacity: totalRoom(total), room, soon };
  };

  const take = (deliveries: ClaimedDelivery[]): void => {
    if (closed) {
      // Stopping: they go back to the job queue like everything queued here.
      recorder.release(deliveries.map((d) => ({ id: d.id, subscription_id: d.subscription_id })));
      void recorder.flush();
      return;
    }
    queueClaimed(deliveries, new Set());
  };

  // ---- live settings -------------------------------------------------------------------
  const refresh = async (webhookIds?: string[]): Promise<void> => {
    if (closed) return;
    const ids = webhookIds ?? [...lanes.keys()];
    if (ids.length === 0) return;
    // A stop whose flush has landed is visible to the query below; a later one is not yet.
    const settledStops = new Set(ids.filter((id) => lanes.get(id)?.stop?.done));
    const rows = await readSendSettings(ctx.conn.sql, ids);
    const found = new Map(rows.map((r) => [r.id, r]));
    for (const id of ids) {
      const row = found.get(id);
      if (!row) {
        // Deleted: its deliveries are cancelled; what is queued here goes back, and no job sends it.
        const l = lanes.get(id);
        if (l) stopLane(l, "disabled");
        continue;
      }
      // A lane is made even when none is held yet: deliveries read before this change (a
      // fanout or claim still in its transaction) are queued with these settings instead.
      const l = lane(id);
      const { id: _id, circuit_closed, ...s } = row;
      adopt(l, s);
      if (!s.is_active) stopLane(l, "disabled");
      else if (l.stop && circuit_closed && settledStops.has(id)) {
        // Enabled again, or a circuit reset (a new URL, auth, headers or signature).
        l.stop = null;
        l.failures = 0;
      }
      pump(l);
    }
  };

  const gc = setInterval(() => {
    const now = Date.now();
    for (const [id, l] of lanes) {
      // (A lane gives its grant back before this, after GRANT_IDLE_MS.)
      if (l.queue.length === 0 && l.inFlight === 0 && !l.grant.held && !l.renewing && now - l.lastActive > LANE_IDLE_MS) lanes.delete(id);
    }
  }, 10_000);
  gc.unref();

  return {
    admit,
    offer,
    take,
    refresh,
    async close(graceMs) {
      if (closed) return;
      closed = true;
      clearInterval(gc);
      // Our grants go with our registry row when the heartbeat stops (on delete cascade).
      grants.close();
      for (const l of lanes.values()) {
        if (l.timer) clearTimeout(l.timer);
        recorder.release(l.queue.map((i) => ({ id: i.d.id, subscription_id: i.d.subscription_id })));
        total -= l.queue.length;
        l.queue = [];
      }
      for (const w of totalWaiters.splice(0)) w();
      const deadline = Date.now() + graceMs;
      recorder.stopBy(deadline + 1000);
      while ([...lanes.values()].some((l) => l.inFlight > 0) && Date.now() < deadline) await sleep(20);
      const left = [...lanes.values()].reduce((n, l) => n + l.inFlight, 0);
      if (left > 0) ctx.logger.warn({ inFlight: left }, "in-flight deliveries did not finish within the grace period; they will be retried");
      await Promise.race([recorder.flush(), sleep(timerMs(Math.max(1000, deadline - Date.now())))]);
    },
  };
}
