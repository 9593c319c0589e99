// Durations handed to Node's timers. setTimeout and setInterval take at most 2^31-1 ms (about
// 24.8 days); a longer, negative or non-finite delay becomes 1 ms with a TimeoutOverflowWarning,
// which turns a "wait a long time" into a busy loop. Every computed delay goes through here.

/** The longest delay Node's timers honour. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `ms` clamped to what a timer honours: [0, MAX_TIMER_MS]; NaN counts as 0. */
export function timerMs(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(Math.ceil(ms), MAX_TIMER_MS);
}
