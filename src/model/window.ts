// The lanes' arithmetic: how many requests one webhook gets open at once (a window that starts
// at one, doubles on success and halves on failure, bounded by max_in_flight and by this
// dispatcher's share of it), how requests are spaced by rate_limit_per_s (or this dispatcher's
// share of it), and how much a lane and all lanes together hold. Pure:
// dispatch/lanes.ts keeps the state and does the sending.
import { requestSpacingMs } from "./rate-limit";

/** Deliveries held in memory for all lanes together. */
export const TOTAL_QUEUE_CAP = 5000;

/** A new (or forgotten) lane sends one request at a time until it has seen a success. */
export const INITIAL_WINDOW = 1;

/** The window after one result: doubled on success, halved on failure, within 1..maxInFlight. */
export function nextWindow(window: number, ok: boolean, maxInFlight: number): number {
  return ok ? Math.min(maxInFlight, window * 2) : Math.max(1, Math.floor(window / 2));
}

/**
 * Requests a lane may have open now: its window, never more than max_in_flight, nor more than
 * the slots this dispatcher holds of it (model/grant.ts; default: all of them).
 */
export function openLimit(window: number, maxInFlight: number, grantedSlots = Infinity): number {
  return Math.min(window, maxInFlight, grantedSlots);
}

/**
 * Milliseconds until a lane limited to `ratePerS` (null: no limit) may start its next request,
 * given when it started the last one; 0: now.
 */
export function startDelayMs(ratePerS: number | null, lastStartAt: number, now: number): number {
  if (ratePerS === null) return 0;
  return Math.max(0, lastStartAt + requestSpacingMs(ratePerS) - now);
}

/** Deliveries one lane holds queued at most (a claim waits or is put back beyond it). */
export function laneCap(maxInFlight: number): number {
  return Math.max(100, maxInFlight * 10);
}

/**
 * How many more deliveries fanout may lease straight to a lane that holds `queued`. Fanout may
 * fill a moving lane further than claims do (half the total), so that a backlog for one webhook
 * goes to it directly instead of through jobs.
 */
export function fanoutRoom(maxInFlight: number, queued: number): number {
  return Math.max(0, Math.max(laneCap(maxInFlight), TOTAL_QUEUE_CAP / 2) - queued);
}

/** The most fanout waits, per batch, for room in a busy lane. */
export const FANOUT_PACE_MAX_MS = 100;
/** The smallest batch a paced fanout reads. */
export const FANOUT_MIN_BATCH = 100;

/**
 * True when a lane with `openLimitNow` requests open at once, each taking about `perRequestMs`,
 * frees room for FANOUT_MIN_BATCH deliveries within FANOUT_PACE_MAX_MS: when such a lane is
 * full, fanout waits that moment for its room rather than queuing jobs for what does not fit.
 * A slow lane (or one sending a request at a time) is never waited for.
 */
export function drainsSoon(perRequestMs: number, openLimitNow: number): boolean {
  return (openLimitNow / Math.max(1, perRequestMs)) * FANOUT_PACE_MAX_MS >= FANOUT_MIN_BATCH;
}

/**
 * How many events fanout reads next, given the room of the busy lanes (drainsSoon) among those
 * the last batch fed (`rooms`): no more than the fullest of them takes, so that a steady stream
 * to one busy webhook goes to its lane instead of to jobs; 0 means wait for room first.
 * FANOUT_MIN_BATCH keeps batches worth their transaction.
 */
export function pacedBatch(rooms: number[], maxBatch: number, minBatch = FANOUT_MIN_BATCH): number {
  if (rooms.length === 0) return maxBatch;
  const least = Math.min(...rooms);
  if (least >= maxBatch) return maxBatch;
  return least >= minBatch ? least : 0;
}

/** How many more deliveries all lanes together take when they hold `held`. */
export function totalRoom(held: number): number {
  return Math.max(0, TOTAL_QUEUE_CAP - held);
}

/**
 * Roughly how long until `n` more deliveries fit in a lane holding `queued` (capped at `cap`),
 * when each request takes `perRequestMs` and `openLimit` run at once.
 */
export function waitEstimateMs(queued: number, n: number, cap: number, perRequestMs: number, openLimitNow: number): number {
  const over = queued + n - cap;
  if (over <= 0) return 0;
  return (over * perRequestMs) / Math.max(1, openLimitNow);
}

/**
 * When a full lane's deliveries go back to the job queue, how long they wait there: a stuck
 * lane (requests open and nothing finishing) by its estimate, between 1 s and 30 s; a lane
 * that is moving but full, half a second.
 */
export function putBackDelayMs(stuck: boolean, estimateMs: number): number {
  return stuck ? Math.min(30_000, Math.max(1000, estimateMs)) : 500;
}
