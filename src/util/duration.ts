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

/** The points in time accepted anywhere (queries, replays, cursors): what both a JS Date and Postgres hold. */
export const EARLIEST = new Date("1970-01-01T00:00:00.000Z");
export const LATEST = new Date("9999-12-31T23:59:59.999Z");
const RANGE = "from 1970-01-01 to 9999-12-31 (UTC)";

// 2025-01-31, 2025-01-31T09:00, 2025-01-31T09:00:00.123456Z, 2025-01-31 09:00:00+02:00
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?(?:(Z)|([+-])(\d{2}):?(\d{2}))?$/i;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * A strict ISO 8601 timestamp: every field in its range (no 2024-02-30 rolling over to March),
 * the instant within EARLIEST..LATEST. Without an offset a date means UTC midnight and a date
 * with a time means local time, as in JavaScript. Throws a message naming the expected shape.
 */
export function parseTimestamp(text: string): Date {
  const m = ISO.exec(text.trim());
  if (!m) throw new Error(`expected a duration such as 2h or 7d, or an ISO timestamp such as 2025-01-31T09:00:00Z, got ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, sec, frac, z, sign, oh, om] = m;
  const year = Number(y), month = Number(mo), day = Number(d);
  const hour = Number(h ?? 0), minute = Number(mi ?? 0), second = Number(sec ?? 0);
  const ms = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  const offsetHours = Number(oh ?? 0), offsetMinutes = Number(om ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59 || offsetHours > 23 || offsetMinutes > 59) {
    throw new Error(`${JSON.stringify(text)} is not a date that exists`);
  }
  let t: number;
  if (z !== undefined || sign !== undefined || h === undefined) {
    const offset = (sign === "-" ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
    t = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offset;
  } else {
    t = new Date(year, month - 1, day, hour, minute, second, ms).getTime();
  }
  // Date.UTC maps years 0-99 to 1900-1999; those are out of range anyway.
  if (year < 1970 || Number.isNaN(t) || t < EARLIEST.getTime() || t > LATEST.getTime()) {
    throw new Error(`${JSON.stringify(text)} is out of range; expected a time ${RANGE}`);
  }
  return new Date(t);
}

/** "2h" → two hours ago; an ISO timestamp → that instant (see parseTimestamp). */
export function parseSince(text: string, now = new Date()): Date {
  if (/^\s*\d+(?:\.\d+)?\s*(ms|s|m|h|d|w)\s*$/.test(text)) {
    const t = now.getTime() - parseDuration(text);
    if (!(t >= EARLIEST.getTime())) throw new Error(`${JSON.stringify(text)} ago is before 1970; expected a time ${RANGE}`);
    return new Date(t);
  }
  return parseTimestamp(text);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
