// Durations and points in time mean the same everywhere: "30s", "5m", "2h", "7d", "500ms",
// or (for points in time) an ISO timestamp.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "2h" → 7200000. Throws a message naming the expected shape. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/.exec(text);
  if (!m || m[1] === undefined || m[2] === undefined) {
    throw new Error(`expected a duration such as 30s, 5m, 2h or 7d, got ${JSON.stringify(text)}`);
  }
  return Math.round(Number(m[1]) * (UNITS[m[2]] ?? 1));
}

/** "2h" → two hours ago; an ISO timestamp → that instant. */
export function parseSince(text: string, now = new Date()): Date {
  if (/^\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)\s*$/.test(text)) return new Date(now.getTime() - parseDuration(text));
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new Error(`expected a duration such as 2h or 7d, or an ISO timestamp, got ${JSON.stringify(text)}`);
  }
  return new Date(t);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
