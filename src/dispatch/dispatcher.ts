// The dispatcher: graphile-worker runs the fanout and deliver tasks; a LISTEN on
// `pg_webhooks` (re-established after reconnects) plus a poll wakes fanout up, and a LISTEN
// on `pg_webhooks_settings` makes the lanes re-read a webhook changed by the API or the CLI.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { run, Logger as GraphileLogger, type Runner, type Task, type WorkerEvents } from "graphile-worker";
// Not re-exported from the package root; see boundWorkerRetries.
import { RETRYABLE_ERROR_CODES } from "graphile-worker/dist/lib";
import type { Config } from "../config";
import type { Logger } from "../logger";
import type { DeliverContext } from "./context";
import { connectionBudget, tooManyConnectionsHint } from "../db/budget";
import { FANOUT_TASK, DELIVER_TASK, type DeliverPayload } from "./enqueue";
import { fanout, FANOUT_BATCH, type LocalLanes } from "./fanout";
import { createEngine } from "./lanes";
import { releaseAbandonedJobs, startHeartbeat } from "./heartbeat";
import { releaseProbes } from "./health";
import { breakerFromConfig, type BreakerSettings } from "../model/circuit";
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

/** Marks the dispatcher idle (writers then NOTIFY) or busy (writers skip the NOTIFY). */
async function setIdle(ctx: DeliverContext, idle: boolean): Promise<void> {
  await ctx.conn.sql`update webhooks.dispatcher_wakeup set idle = ${idle} where idle is distinct from ${idle}`;
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
  const local: LocalLanes = { owner: id, capacity: engine.capacity, room: engine.room, take: engine.take };
  const workerIds = new Set<string>();
  const events: WorkerEvents = new EventEmitter() as WorkerEvents;
  events.on("pool:create", ({ workerPool }) => workerIds.add(workerPool.id));
  events.on("worker:create", ({ worker }) => workerIds.add(worker.workerId));

  // Fanout runs in this process, not as a job: a NOTIFY (or the poll) starts it at once, and
  // wake-ups that come while it runs make it go round again. Several dispatchers fan out
  // side by side; SKIP LOCKED gives each its own events.
  let stopping = false;
  let fanning: Promise<void> | null = null;
  let wanted = false;
  const fanoutUntilIdle = async (): Promise<void> => {
    while (!stopping) {
      // A batch at a time, so a stop is noticed between batches during a long backlog.
      const r = await fanout(conn, FANOUT_BATCH, 1, local);
      if (r.events > 0) logger.debug(r, "fanout");
      if (r.more) continue;
      // Drained: ask writers for a NOTIFY again, then look once more for rows committed
      // before they could see the flag. Rows found then mean a busy stream: stay busy
      // (writers skip the NOTIFY) and go round again.
      await setIdle(ctx, true);
      const again = await fanout(conn, FANOUT_BATCH, 1, local);
      if (again.events === 0) return;
      logger.debug(again, "fanout");
      await setIdle(ctx, false);
    }
  };
  const wake = (): Promise<void> => {
    wanted = true;
    fanning ??= (async () => {
      try {
        while (wanted && !stopping) {
          wanted = false;
          await fanoutUntilIdle();
        }
      } catch (e) {
        logger.warn({ err: e }, "fanout failed; the next wake-up or poll tries again");
      } finally {
        fanning = null;
      }
    })();
    return fanning;
  };
  // Jobs of this name were queued by earlier versions; one still queued just wakes fanout.
  const fanoutTask: Task = () => wake();
  const deliverTask: Task = async (payload) => {
    const p = payload as DeliverPayload | null;
    await engine.admit(p?.ids ?? [], p?.w);
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
    taskList: { [FANOUT_TASK]: tracked(fanoutTask), [DELIVER_TASK]: tracked(deliverTask) },
  });

  // postgres.js re-issues LISTEN after a reconnect and calls the second callback each time;
  // we fan out then too, since notifications sent while disconnected are gone.
  const listener = await conn.sql.listen(
    "pg_webhooks",
    () => void wake(),
    () => void wake(),
  );

  // A changed webhook (sql/0005's trigger NOTIFYs its id at commit): the lanes re-read it.
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

  const poll = setInterval(() => {
    conn.sql`select exists (select 1 from webhooks.outbox where dispatched_at is null) as pending`
      .then(([row]) => {
        if (row?.pending) void wake();
      })
      .catch((e: unknown) => logger.debug({ err: e }, "poll failed"));
  }, timerMs(config.WEBHOOKS_POLL_INTERVAL_MS));
  poll.unref();

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
        clearInterval(poll);
        clearInterval(probes);
        await settledBy(settingsListener.unlisten().catch(() => {}), Math.min(deadline, Date.now() + 1000));
        stopping = true;
        // Each step is bounded: on a database that is away, unlisten, graphile-worker's stop
        // (its workers may sleep in back-offs of up to minutes) and our last writes would
        // otherwise wait for it to come back.
        await settledBy(listener.unlisten().catch(() => {}), Math.min(deadline, Date.now() + 1000));
        // Graceful: no new jobs; queued deliveries go back to the job queue; requests in
        // flight get until the deadline to finish and be recorded.
        const stopped = Promise.all([runner.stop(), fanning]).catch((e: unknown) => logger.warn({ err: e }, "graphile-worker did not stop cleanly"));
        if (!(await settledBy(stopped, deadline))) logger.warn("running jobs did not finish within the grace period");
        await engine.close(Math.max(0, deadline - Date.now()));
        await settledBy(heartbeat.close(), Date.now() + 1000);
        logger.info({ dispatcher: id }, "dispatcher stopped");
      })();
      return closing;
    },
  };
}
