// Opaque page cursors: base64url of (created_at with microseconds, id), the sort key of every
// list. Microseconds matter: a JS Date would round them away and repeat or skip rows.
import { sql, type RawBuilder } from "kysely";
import { DomainError } from "../errors";
import { parseTimestamp } from "../util/duration";

export interface CursorKey {
  /** created_at as Postgres text in UTC, microsecond precision. */
  ts: string;
  id: string;
}

/**
 * A row's cursor timestamp, to pair with encodeCursor: created_at as text, since a JS Date would
 * drop its microseconds.
 */
export function cursorTs(table: "s" | "d"): RawBuilder<string> {
  return sql<string>`to_char(${sql.ref(`${table}.created_at`)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/**
 * Rows after (`>`, oldest-first lists) or before (`<`, newest first) the cursor in (created_at,
 * id) order. The timestamp goes in as text: a timestamptz parameter would pass through a JS Date.
 */
export function pastCursor(table: "s" | "d", op: ">" | "<", key: CursorKey): RawBuilder<boolean> {
  return sql<boolean>`(${sql.ref(`${table}.created_at`)}, ${sql.ref(`${table}.id`)}) ${sql.raw(op)} (${key.ts}::text::timestamptz, ${key.id}::uuid)`;
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
