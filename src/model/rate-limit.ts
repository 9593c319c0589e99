// A webhook's rate limit: the bounds the API, the CLI and the lanes share.

/** One request every 1,000 s (16 min 40 s): the slowest rate accepted. */
export const MIN_RATE_LIMIT_PER_S = 0.001;
export const MAX_RATE_LIMIT_PER_S = 10_000;

/**
 * Milliseconds between the starts of two requests at `ratePerS`. A rate outside the bounds
 * (stored before they were enforced) counts as the nearest bound, so the spacing is at most
 * 1,000,000 ms and always fits a timer.
 */
export function requestSpacingMs(ratePerS: number): number {
  const rate = Number.isNaN(ratePerS) ? MIN_RATE_LIMIT_PER_S : Math.min(MAX_RATE_LIMIT_PER_S, Math.max(MIN_RATE_LIMIT_PER_S, ratePerS));
  return 1000 / rate;
}
