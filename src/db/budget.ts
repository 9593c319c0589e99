// How many database connections a process opens, and what to say when the server has none
// left. No imports: the CLI's error path loads it without the database drivers.

/** Connections a one-shot CLI command opens at most (plus one while it applies migrations). */
export const COMMAND_POOL_SIZE = 4;

export interface ConnectionBudget {
  /** Our postgres.js pool: fanout, claims, the recorder, heartbeat, polls, the API. */
  pool: number;
  /** graphile-worker's pool: one connection for its LISTEN, the others for fetching and completing jobs. */
  worker: number;
  /** Our LISTEN for new events (postgres.js keeps it on a connection of its own). */
  listen: number;
}

/**
 * How a `start` process splits WEBHOOKS_DB_POOL_SIZE (`size`, at least 4): with a dispatcher,
 * graphile-worker gets one connection per concurrent job plus its LISTEN, but at most half;
 * one is our LISTEN; the rest is our pool. The API alone uses them all for our pool.
 */
export function connectionBudget(size: number, concurrency: number, dispatcher: boolean): ConnectionBudget {
  if (!dispatcher) return { pool: size, worker: 0, listen: 0 };
  const worker = Math.max(2, Math.min(concurrency + 1, Math.floor(size / 2)));
  return { pool: size - worker - 1, worker, listen: 1 };
}

/**
 * What to tell an operator when the server refuses a connection because its slots are used
 * up (SQLSTATE 53300 too_many_connections, including "remaining connection slots are
 * reserved"); null for any other error.
 */
export function tooManyConnectionsHint(e: unknown, poolSize?: number): string | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (code !== "53300") return null;
  return (
    `the database server has no connection slots left (max_connections): each \`pg-webhooks start\` opens up to ` +
    `WEBHOOKS_DB_POOL_SIZE connections${poolSize === undefined ? "" : ` (now ${poolSize})`} and each command up to ${COMMAND_POOL_SIZE}; ` +
    `lower WEBHOOKS_DB_POOL_SIZE, stop idle clients, or raise max_connections on the server`
  );
}
