// The backfill job: runs a slice of one backfill (batches of webhooks.backfill_batch(), each
// its own transaction, so the cursor is committed with the events it covers), then queues the
// next slice, at the time its --rate allows. A job holds a worker for about a second at most.
import { setTimeout as sleep } from "node:timers/promises";
import type { Connection } from "../db/connection";
import { enqueueBackfill } from "./jobs";

/** Rows per batch (one transaction) without a rate. */
export const BACKFILL_BATCH = 500;
/** How long one job keeps running batches before it hands over to the next job. */
export const BACKFILL_SLICE_MS = 1000;
/** A wait shorter than this is slept inside the job; a longer one becomes the next job's run_at. */
const INLINE_WAIT_MS = 250;

/** Rows per batch for a rate: about a tenth of a second's worth, at least one. */
export function batchFor(ratePerS: number | null): number {
  if (ratePerS === null) return BACKFILL_BATCH;
  return Math.max(1, Math.min(BACKFILL_BATCH, Math.floor(ratePerS / 10)));
}

/** Deadlock and serialization failures: the batch rolled back whole, so it is simply run again. */
const RETRYABLE = new Set(["40P01", "40001"]);

async function batchOnce(conn: Connection, backfillId: string, batch: number, tries = 5): Promise<{ batch_rows: number; batch_state: string } | undefined> {
  for (let i = 1; ; i++) {
    try {
      const [r] = await conn.sql<{ batch_rows: number; batch_state: string }[]>`
        select batch_rows, batch_state from webhooks.backfill_batch(${backfillId}, ${batch})`;
      return r;
    } catch (e) {
      if (i >= tries || !RETRYABLE.has((e as { code?: string }).code ?? "")) throw e;
      await sleep(20 * i);
    }
  }
}

/** A Postgres error about the statement itself (not a lost connection, shutdown or lock timeout). */
function isRowError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string" || !/^[0-9A-Z]{5}$/.test(code)) return false;
  return !/^(08|53|57|58|40|55)/.test(code);
}

export interface SliceResult {
  rows: number;
  state: string;
}

/** Runs batches of the backfill for up to BACKFILL_SLICE_MS, then queues the next slice if it is still running. */
export async function runBackfillSlice(conn: Connection, backfillId: string, sliceMs = BACKFILL_SLICE_MS): Promise<SliceResult> {
  const [b] = await conn.sql<{ rate_per_s: number | null; state: string }[]>`
    select rate_per_s, state from webhooks.backfills where id = ${backfillId}`;
  if (!b || b.state !== "running") return { rows: 0, state: b?.state ?? "cancelled" };
  const rate = b.rate_per_s;
  const batch = batchFor(rate);
  const started = Date.now();
  let rows = 0;
  let state = "running";
  for (;;) {
    const batchStart = Date.now();
    let r: Awaited<ReturnType<typeof batchOnce>>;
    try {
      r = await batchOnce(conn, backfillId, batch);
    } catch (e) {
      if (!isRowError(e)) throw e; // the database went away: the job runs again
      // The table changed under it (a column --where names was dropped, a type no longer casts):
      // running it again would fail again. It stops, resumable once fixed.
      await conn.sql`
        update webhooks.backfills set state = 'failed', error = ${(e as Error).message}, updated_at = now(), finished_at = now()
         where id = ${backfillId} and state = 'running'`;
      return { rows, state: "failed" };
    }
    rows += r?.batch_rows ?? 0;
    state = r?.batch_state ?? "cancelled";
    if (state !== "running") return { rows, state };
    // --rate: the next batch starts when this one's rows have had their share of a second.
    const nextAt = rate === null ? Date.now() : batchStart + ((r?.batch_rows ?? 0) / rate) * 1000;
    const wait = nextAt - Date.now();
    if (Date.now() + Math.max(0, wait) - started >= sliceMs || wait > INLINE_WAIT_MS) {
      await enqueueBackfill(conn.sql, backfillId, wait > 0 ? new Date(nextAt) : null);
      return { rows, state };
    }
    if (wait > 0) await sleep(wait);
  }
}
