// Dispatcher registry: each dispatcher keeps a heartbeat row; any dispatcher sweeps one whose
// heartbeat stopped (kill -9, lost host): its graphile-worker jobs are released and its leased
// deliveries get jobs again (claim.ts), so its work is picked up in seconds instead of after
// graphile-worker's four-hour lock timeout.
import { hostname } from "node:os";
import type { Connection } from "../db/connection";
import type { Logger } from "../logger";
import { BACKFILL_TASK, DELIVER_TASK } from "./jobs";
import { releaseDeadOwners } from "./claim";
import { timerMs } from "../util/timer";

export interface Heartbeat {
  close(): Promise<void>;
}

export async function sweepDeadDispatchers(conn: Connection, timeoutMs: number): Promise<string[]> {
  return conn.sql.begin(async (tx) => {
    const released: string[] = [];
    const dead = await tx<{ id: string }[]>`
      delete from webhooks.dispatchers
       where heartbeat_at < now() - ${timeoutMs} * interval '1 millisecond'
      returning id`;
    // Locks held by a worker that no live dispatcher claims, older than the timeout, belong
    // to a dead process (including one that died before it could register its worker ids).
    const stale = await tx<{ locked_by: string }[]>`
      select distinct j.locked_by
        from graphile_worker._private_jobs j
        join graphile_worker._private_tasks t on t.id = j.task_id
       where j.locked_by is not null
         and j.locked_at < now() - ${timeoutMs} * interval '1 millisecond'
         and t.identifier in (${DELIVER_TASK}, ${BACKFILL_TASK})
         and not exists (select 1 from webhooks.dispatchers d where j.locked_by = any(d.worker_ids))`;
    const ids = stale.map((s) => s.locked_by);
    if (ids.length > 0) await tx`select graphile_worker.force_unlock_workers(${ids}::text[])`;
    // Deliveries a dead dispatcher held in memory (queued or in flight) get a job again.
    const orphans = await releaseDeadOwners(tx);
    if (orphans > 0) released.push(`${orphans} deliveries`);
    return [...dead.map((d) => d.id), ...ids, ...released];
  });
}

/**
 * Unlocks jobs our workers hold but are not running: graphile-worker does not await (or
 * retry) the query that completes a job, so one that finished while the database was away
 * stays locked by a live worker for good. The 5 s margin lets an in-flight completion land.
 */
export async function releaseAbandonedJobs(conn: Connection, workerIds: string[], runningJobIds: string[]): Promise<number> {
  if (workerIds.length === 0) return 0;
  const rows = await conn.sql`
    update graphile_worker._private_jobs
       set locked_by = null, locked_at = null
     where locked_by = any(${workerIds}::text[])
       and locked_at < now() - interval '5 seconds'
       and not (id = any(${runningJobIds}::bigint[]))
    returning id`;
  return rows.length;
}

export async function startHeartbeat(opts: {
  conn: Connection;
  id: string;
  workerIds: () => string[];
  timeoutMs: number;
  logger: Logger;
  /** What to tell the operator about a failed beat (say, which setting to change), if anything. */
  hint?: (e: unknown) => string | null;
  /** Runs on every beat before the sweep of dead dispatchers. */
  beforeSweep?: () => Promise<void>;
}): Promise<Heartbeat> {
  const { conn, id, timeoutMs, logger } = opts;
  await conn.sql`
    insert into webhooks.dispatchers (id, hostname, pid, worker_ids)
    values (${id}, ${hostname()}, ${process.pid}, ${opts.workerIds()}::text[])`;
  let stopped = false;
  const beat = async () => {
    try {
      await conn.sql`
        insert into webhooks.dispatchers (id, hostname, pid, worker_ids)
        values (${id}, ${hostname()}, ${process.pid}, ${opts.workerIds()}::text[])
        on conflict (id) do update set heartbeat_at = now(), worker_ids = excluded.worker_ids`;
      await opts.beforeSweep?.();
      const released = await sweepDeadDispatchers(conn, timeoutMs);
      if (released.length > 0) logger.warn({ released }, "released the jobs of dispatchers that stopped answering");
    } catch (e) {
      if (stopped) return;
      const hint = opts.hint?.(e);
      logger.warn({ err: e, ...(hint ? { hint } : {}) }, "heartbeat failed; will retry");
    }
  };
  const timer = setInterval(() => void beat(), timerMs(Math.max(200, Math.floor(timeoutMs / 4))));
  timer.unref();
  void beat();
  return {
    async close() {
      stopped = true;
      clearInterval(timer);
      await conn.sql`delete from webhooks.dispatchers where id = ${id}`.catch(() => {});
    },
  };
}
