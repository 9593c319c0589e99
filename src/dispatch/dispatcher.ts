// The dispatcher: graphile-worker runs the fanout and deliver tasks; a LISTEN on
// `pg_webhooks` (re-established after reconnects) plus a poll wakes fanout up.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { run, Logger as GraphileLogger, type Runner, type Task, type WorkerEvents } from "graphile-worker";
import type { Config } from "../config";
import type { Logger } from "../logger";
import type { DeliverContext } from "./context";
import { FANOUT_TASK, DELIVER_TASK, type DeliverPayload } from "./enqueue";
import { fanout, FANOUT_BATCH, type LocalLanes } from "./fanout";
import { createEngine } from "./lanes";
import { releaseAbandonedJobs, startHeartbeat } from "./heartbeat";
import { breakerFromConfig, releaseProbes, type BreakerSettings } from "./health";
import { timerMs } from "../util/timer";

export interface Dispatcher {
  id: string;
  close(): Promise<void>;
}

function graphileLogger(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => (level, message, meta) => {
    const fields = { ...scope, ...(meta ?? {}) };
    if (level === "error") logger.error(fields, message);
    else if (level === "warning") logger.warn(fields, message);
    else logger.debug(fields, message);
  });
}

/** Marks the dispatcher idle (writers then NOTIFY) or busy (writers skip the NOTIFY). */
async function setIdle(ctx: DeliverContext, idle: boolean): Promise<void> {
  await ctx.conn.sql`update webhooks.dispatcher_wakeup set idle = ${idle} where idle is distinct from ${idle}`;
}

export async function startDispatcher(opts: {
  config: Config;
  databaseUrl: string;
  ctx: DeliverContext;
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

  const runner: Runner = await run({
    connectionString: databaseUrl,
    concurrency: config.WEBHOOKS_CONCURRENCY,
    pollInterval: timerMs(config.WEBHOOKS_POLL_INTERVAL_MS),
    noHandleSignals: true,
    logger: graphileLogger(logger),
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
    close() {
      closing ??= (async () => {
        clearInterval(poll);
        clearInterval(probes);
        await listener.unlisten().catch(() => {});
        // Graceful: no new jobs; queued deliveries go back to the job queue; requests in
        // flight get the grace period to finish and be recorded.
        const grace = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timerMs(config.WEBHOOKS_SHUTDOWN_GRACE_MS)).unref());
        stopping = true;
        const stopped = Promise.all([runner.stop(), fanning]);
        if ((await Promise.race([stopped.then(() => "ok" as const), grace])) === "timeout") {
          logger.warn("running jobs did not finish within the grace period");
        }
        await engine.close(config.WEBHOOKS_SHUTDOWN_GRACE_MS);
        await heartbeat.close();
        logger.info({ dispatcher: id }, "dispatcher stopped");
      })();
      return closing;
    },
  };
}
