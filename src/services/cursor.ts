// Opaque page cursors: base64url of (created_at with microseconds, id), the sort key of every
// list. Microseconds matter: a JS Date would round them away and repeat or skip rows.
import { DomainError } from "../errors";
import { parseTimestamp } from "../util/duration";

export interface CursorKey {
  /** created_at as Postgres text in UTC, microsecond precision. */
  ts: string;
  id: string;
}

/**
 * The SQL expression for a row's cursor timestamp; pair it with encodeCursor. Compare against
 * it as `${ts}::text::timestamptz`: a parameter typed timestamptz would go through a JS Date
 * and lose the microseconds.
 */
export function cursorTs(column: "created_at" | "d.created_at"): string {
  return `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.ts, key.id]), "utf8").toString("base64url");
}

const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A crafted cursor may carry 9999-99-99 or year 0: Postgres would refuse it with a 500. */
function isTimestamp(ts: string): boolean {
  try {
    parseTimestamp(ts);
    return true;
  } catch {
    return false;
  }
}

export function decodeCursor(cursor: string): CursorKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    parsed = null;
  }
  if (Array.isArray(parsed) && parsed.length === 2) {
    const [ts, id] = parsed as unknown[];
    if (typeof ts === "string" && TS.test(ts) && isTimestamp(ts) && typeof id === "string" && UUID.test(id)) return { ts, id };
  }
  const message = "expected a cursor from a previous page's next_cursor";
  throw new DomainError("invalid_input", `cursor: ${message}`, [{ path: "cursor", message }]);
}

/** Splits limit+1 fetched rows into a page and the next cursor. */
export function paginate<T extends { cursor_ts: string; id: string }>(
  rows: T[],
  limit: number,
): { page: T[]; next_cursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, next_cursor: rows.length > limit && last ? encodeCursor({ ts: last.cursor_ts, id: last.id }) : null };
}

export function isUuid(id: string): boolean {
  return UUID.test(id);
}
