// Wake-up: when fanout runs. A NOTIFY on `pg_webhooks` (LISTEN re-established after
// reconnects) or the poll starts a round at once, and wake-ups that come while it runs make it
// go round again. The idle flag in webhooks.dispatcher_wakeup tells writers whether a NOTIFY
// is wanted: only while the dispatchers have drained the outbox.
import type { Connection } from "../db/connection";
import type { Logger } from "../logger";
import { settledBy } from "../util/deadline";
import { timerMs } from "../util/timer";

export interface WakeUp {
  /** Runs rounds until the outbox is drained; a call during a round makes it go round again. */
  wake(): Promise<void>;
  /**
   * Stops polling and listening (the unlisten bounded by `deadline`, at most a second), and
   * starts no more rounds. `running()` then gives the round still in progress.
   */
  close(deadline: number): Promise<void>;
  /** Resolves when the round in progress, if any, has ended. */
  running(): Promise<void>;
}

/** Marks the dispatcher idle (writers then NOTIFY) or busy (writers skip the NOTIFY). */
async function setIdle(conn: Connection, idle: boolean): Promise<void> {
  await conn.sql`update webhooks.dispatcher_wakeup set idle = ${idle} where idle is distinct from ${idle}`;
}

export async function startWakeUp(opts: {
  conn: Connection;
  logger: Logger;
  pollIntervalMs: number;
  /** One fanout batch; `more` when it was full. */
  round: () => Promise<{ events: number; more: boolean }>;
}): Promise<WakeUp> {
  const { conn, logger, round } = opts;
  let stopping = false;
  let fanning: Promise<void> | null = null;
  let wanted = false;

  const untilIdle = async (): Promise<void> => {
    while (!stopping) {
      // A batch at a time, so a stop is noticed between batches during a long backlog.
      const r = await round();
      if (r.events > 0) logger.debug(r, "fanout");
      if (r.more) continue;
      // Drained: ask writers for a NOTIFY again, then look once more for rows committed
      // before they could see the flag. Rows found then mean a busy stream: stay busy
      // (writers skip the NOTIFY) and go round again.
      await setIdle(conn, true);
      const again = await round();
      if (again.events === 0) return;
      logger.debug(again, "fanout");
      await setIdle(conn, false);
    }
  };

  const wake = (): Promise<void> => {
    wanted = true;
    fanning ??= (async () => {
      try {
        while (wanted && !stopping) {
          wanted = false;
          await untilIdle();
        }
      } catch (e) {
        logger.warn({ err: e }, "fanout failed; the next wake-up or poll tries again");
      } finally {
        fanning = null;
      }
    })();
    return fanning;
  };

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
  }, timerMs(opts.pollIntervalMs));
  poll.unref();

  return {
    wake,
    async close(deadline) {
      clearInterval(poll);
      stopping = true;
      await settledBy(listener.unlisten().catch(() => {}), Math.min(deadline, Date.now() + 1000));
    },
    running: () => fanning ?? Promise.resolve(),
  };
}
