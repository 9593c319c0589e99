// The dispatcher: wires the parts of the daemon together and owns their shutdown. Wake-up
// (wakeup.ts) runs fanout, whose leased deliveries go to the lanes; graphile-worker runs the
// deliver jobs, each handing its deliveries to the lanes (lanes.ts); a LISTEN on
// `pg_webhooks_settings` makes the lanes re-read a webhook changed by the API or the CLI;
// the heartbeat keeps this dispatcher registered (heartbeat.ts) and probes reopen circuits.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { EventEmitter } from "node:events";
import { run, Logger as GraphileLogger, type Runner, type Task, type WorkerEvents } from "graphile-worker";
// Not re-exported from the package root; see boundWorkerRetries.
import { RETRYABLE_ERROR_CODES } from "graphile-worker/dist/lib";
import type { Config } from "../config";
import type { Logger } from "../logger";
import type { DeliverContext } from "./context";
import { connectionBudget, tooManyConnectionsHint } from "../db/budget";
import { BACKFILL_TASK, DELIVER_TASK, backfillPayloadSchema, deliverPayloadSchema } from "./jobs";
import { runBackfillSlice } from "./backfill";
import { FANOUT_BATCH, fanout } from "./fanout";
import { createEngine } from "./lanes";
import { startWakeUp } from "./wakeup";
import { releaseAbandonedJobs, startHeartbeat } from "./registry";
import { releaseProbes } from "./health";
import { breakerFromConfig, type BreakerSettings } from "../model/circuit";
import { FANOUT_MIN_BATCH, FANOUT_PACE_MAX_MS, pacedBatch } from "../model/window";
import { settledBy } from "../util/deadline";
import { timerMs } from "../util/timer";

export interface Dispatcher {
  id: string;
  /**
   * Stops taking work; requests in flight may finish until `deadline` (a Date.now() value;
   * default: the shutdown grace from now). Resolves within about two seconds of the deadline
   * whatever the database does: what could not be recorded by then is sent again later.
   */
  close(deadline?: number): Promise<void>;
}

/** How often a paced fanout looks again for room in a lane that drains soon. */
const FANOUT_PACE_POLL_MS = 5;

/** After the deadline, the last recording flush and the heartbeat row's removal get this long. */
export const CLOSE_AFTER_DEADLINE_MS = 2000;

function graphileLogger(logger: Logger, poolSize: number): GraphileLogger {
  return new GraphileLogger((scope) => (level, message, meta) => {
    const hint = tooManyConnectionsHint(meta?.error, poolSize);
    const fields = { ...scope, ...(meta ?? {}), ...(hint ? { hint } : {}) };
    if (level === "error") logger.error(fields, message);
    else if (level === "warning") logger.warn(fields, message);
    else logger.debug(fields, message);
  });
}

/**
 * graphile-worker retries a query that meets 57P03 (the server is starting, shutting down or
 * a standby), EHOSTUNREACH or ETIMEDOUT with its own back-off, growing from 3 s to 120 s
 * (±50 %), inside the call: a worker fetching a job through a failover may sleep for minutes
 * after the database is back. Its workers already poll again after any error, and our
 * heartbeat unlocks a job whose completion was lost, so a retry need never wait longer than a
 * poll. The table is process-wide and only ever lowered here.
 */
export function boundWorkerRetries(maxDelayMs: number): void {
  for (const [code, retry] of Object.entries(RETRYABLE_ERROR_CODES)) {
    if (retry && (retry.maxDelay ?? Infinity) > maxDelayMs) {
      RETRYABLE_ERROR_CODES[code] = { minDelay: Math.min(retry.minDelay ?? maxDelayMs, maxDelayMs), maxDelay: maxDelayMs };
    }
  }
}

export async function startDispatcher(opts: {
  config: Config;
  databaseUrl: string;
  ctx: DeliverContext;
  /** graphile-worker's pool, its LISTEN included (default: its share of WEBHOOKS_DB_POOL_SIZE). */
  workerPoolSize?: number;
}): Promise<Dispatcher> {
  const { config, databaseUrl, ctx } = opts;
  const { conn, logger } = ctx;
  const id = `dispatcher-${randomBytes(6).toString("hex")}`;
  const breaker: BreakerSettings = ctx.breaker ?? breakerFromConfig(config);
  const engine = createEngine(ctx, id, breaker);
  const workerIds = new Set<string>();
  const events: WorkerEvents = new EventEmitter() as WorkerEvents;
  events.on("pool:create", ({ workerPool }) => workerIds.add(workerPool.id));
  events.on("worker:create", ({ worker }) => workerIds.add(worker.workerId));

  const deliverTask: Task = async (payload) => {
    const p = deliverPayloadSchema.safeParse(payload);
    // Not a job we queued: there is nothing to deliver, and running it again would not help.
    if (!p.success) {
      logger.warn({ payload, issues: p.error.issues }, "deliver job with an unreadable payload; skipping it");
      return;
    }
    await engine.admit(p.data.ids, p.data.w);
  };

  const backfillTask: Task = async (payload) => {
    const p = backfillPayloadSchema.safeParse(payload);
    if (!p.success) {
      logger.warn({ payload, issues: p.error.issues }, "backfill job with an unreadable payload; skipping it");
      return;
    }
    const r = await runBackfillSlice(conn, p.data.b);
    if (r.state !== "running") logger.info({ backfill: p.data.b, state: r.state }, "backfill stopped");
  };

  // Registered before any job runs: deliveries it claims name it as their owner, and an
  // owner missing from webhooks.dispatchers is presumed dead.
  const heartbeat = await startHeartbeat({
    conn,
    id,
    workerIds: () => [...workerIds],
    timeoutMs: config.WEBHOOKS_DISPATCHER_TIMEOUT_MS,
    logger,
    hint: (e) => tooManyConnectionsHint(e, config.WEBHOOKS_DB_POOL_SIZE),
    beforeSweep: async () => {
      const n = await releaseAbandonedJobs(conn, [...workerIds], [...running]);
      if (n > 0) logger.warn({ jobs: n }, "released jobs left locked when the database went away");
    },
  });

  // Jobs this process is running now. A job locked by our workers but not running here was
  // finished while the database was away: graphile-worker could not mark it done and will
  // not retry, so we unlock it (below) and it runs again.
  const running = new Set<string>();
  const tracked =
    (task: Task): Task =>
    async (payload, helpers) => {
      running.add(helpers.job.id);
      try {
        await task(payload, helpers);
      } finally {
        running.delete(helpers.job.id);
      }
    };

  boundWorkerRetries(config.WEBHOOKS_POLL_INTERVAL_MS);
  const runner: Runner = await run({
    connectionString: databaseUrl,
    concurrency: config.WEBHOOKS_CONCURRENCY,
    maxPoolSize: opts.workerPoolSize ?? connectionBudget(config.WEBHOOKS_DB_POOL_SIZE, config.WEBHOOKS_CONCURRENCY, true).worker,
    pollInterval: timerMs(config.WEBHOOKS_POLL_INTERVAL_MS),
    noHandleSignals: true,
    logger: graphileLogger(logger, config.WEBHOOKS_DB_POOL_SIZE),
    events,
    taskList: { [DELIVER_TASK]: tracked(deliverTask), [BACKFILL_TASK]: tracked(backfillTask) },
  });

  let stopping = false;
  let fed = new Set<string>();
  // Fanout runs in this process, not as a job: a wake-up starts it at once. Several
  // dispatchers fan out side by side; SKIP LOCKED gives each its own events. What it leased
  // to this dispatcher goes to the lanes once its transaction has committed.
  const wakeup = await startWakeUp({
    conn,
    logger,
    pollIntervalMs: config.WEBHOOKS_POLL_INTERVAL_MS,
    round: async () => {
      // Paced: while the webhooks the last batch fed have busy lanes that are full,
      // read only what they take (waiting up to FANOUT_PACE_MAX_MS for room), so a busy
      // webhook's stream goes to its lane; the rest stays in the outbox meanwhile, which costs
      // nothing, instead of becoming jobs. A lane that is slow, stuck or stopped is not waited for.
      let offer = engine.offer();
      const waitUntil = Date.now() + FANOUT_PACE_MAX_MS;
      let limit = FANOUT_BATCH;
      for (;;) {
        const rooms = [...fed].filter((w) => offer.soon.has(w)).map((w) => Math.min(offer.room.get(w) ?? FANOUT_BATCH, offer.capacity));
        limit = pacedBatch(rooms, FANOUT_BATCH);
        if (limit > 0 || stopping || Date.now() >= waitUntil) break;
        await sleep(FANOUT_PACE_POLL_MS);
        offer = engine.offer();
      }
      const r = await fanout(conn, offer, limit > 0 ? limit : FANOUT_MIN_BATCH);
      fed = r.webhooks;
      if (r.leased.length > 0) engine.take(r.leased);
      return { events: r.events, deliveries: r.deliveries, more: r.more };
    },
  });

  // A changed webhook (sql/0003_live_settings.sql's trigger NOTIFYs its id at commit): the lanes re-read it.
  // Ids arriving together are read in one query; after a reconnect every lane is re-read,
  // since notifications sent while disconnected are gone.
  const changed = new Set<string>();
  let everyLane = false;
  let refreshing: Promise<void> | null = null;
  const refreshSettings = (): void => {
    refreshing ??= (async () => {
      // Yield first: a loop with nothing to do would otherwise clear `refreshing` before it is set.
      await null;
      try {
        while ((changed.size > 0 || everyLane) && !stopping) {
          const ids = everyLane ? undefined : [...changed];
          everyLane = false;
          changed.clear();
          await engine.refresh(ids);
        }
      } catch (e) {
        logger.warn({ err: e }, "could not re-read changed webhook settings; reading every lane's again shortly");
        everyLane = true;
        setTimeout(refreshSettings, 1000).unref();
      } finally {
        refreshing = null;
      }
    })();
  };
  let settingsListening = false;
  const settingsListener = await conn.sql.listen(
    "pg_webhooks_settings",
    (id) => {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return; // not ours
      changed.add(id);
      refreshSettings();
    },
    () => {
      if (settingsListening) everyLane = true;
      settingsListening = true;
      refreshSettings();
    },
  );

  // Probes for open circuits, and deliveries parked behind circuits that have closed.
  const probes = setInterval(() => {
    releaseProbes(conn)
      .then((r) => {
        if (r.probes > 0 || r.unparked > 0) logger.info(r, "circuit probes released");
      })
      .catch((e: unknown) => logger.debug({ err: e }, "probe check failed"));
  }, timerMs(config.WEBHOOKS_POLL_INTERVAL_MS));
  probes.unref();
  logger.info({ dispatcher: id, concurrency: config.WEBHOOKS_CONCURRENCY }, "dispatcher started");

  let closing: Promise<void> | undefined;
  return {
    id,
    close(deadline = Date.now() + config.WEBHOOKS_SHUTDOWN_GRACE_MS) {
      closing ??= (async () => {
        clearInterval(probes);
        // Each step is bounded: on a database that is away, unlisten, graphile-worker's stop
        // (its workers may sleep in back-offs of up to minutes) and our last writes would
        // otherwise wait for it to come back.
        await settledBy(settingsListener.unlisten().catch(() => {}), Math.min(deadline, Date.now() + 1000));
        stopping = true;
        await wakeup.close(deadline);
        // Graceful: no new jobs; queued deliveries go back to the job queue; requests in
        // flight get until the deadline to finish and be recorded.
        const stopped = Promise.all([runner.stop(), wakeup.running()]).catch((e: unknown) => logger.warn({ err: e }, "graphile-worker did not stop cleanly"));
        if (!(await settledBy(stopped, deadline))) logger.warn("running jobs did not finish within the grace period");
        await engine.close(Math.max(0, deadline - Date.now()));
        await settledBy(heartbeat.close(), Date.now() + 1000);
        logger.info({ dispatcher: id }, "dispatcher stopped");
      })();
      return closing;
    },
  };
}
