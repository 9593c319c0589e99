// A backfill (a row of webhooks.backfills) as the API and the CLI take it and show it, and the
// pure check of a --where condition's text before Postgres plans it.
import { z } from "zod";
import type { Selectable } from "kysely";
import type { BackfillTable } from "../db/schema";
import { BACKFILL_STATES } from "./enums";
import { singleLine, storable, strictObject } from "./validation";

export const MAX_BACKFILL_RATE = 100_000;
const RATE_MESSAGE = `expected rows per second from 0.01 to ${MAX_BACKFILL_RATE}`;

export const backfillCreateSchema = strictObject({
  table: z
    .string({ error: "expected a tracked table, such as public.clients" })
    .min(1, { error: "expected a tracked table, such as public.clients" })
    .max(300, { error: "expected a table name of at most 300 characters" })
    .check(singleLine())
    .meta({ description: "The tracked table whose rows are sent, such as public.clients.", examples: ["public.clients"] }),
  where: z
    .string({ error: "expected a SQL condition (a string)" })
    .min(1, { error: "expected a SQL condition such as status = 'active'" })
    .max(4000, { error: "expected a SQL condition of at most 4000 characters" })
    .check(storable)
    .optional()
    .meta({
      description:
        "Admin keys only: a boolean SQL condition over the table's columns, such as status = 'active'. One expression: no ;, " +
        "comments, backslashes or dollar quotes. Checked by planning it in a read-only transaction. Absent: every row.",
      examples: ["status = 'active' and created_at > now() - interval '1 year'"],
    }),
  rate: z
    .number({ error: RATE_MESSAGE })
    .min(0.01, { error: RATE_MESSAGE })
    .max(MAX_BACKFILL_RATE, { error: RATE_MESSAGE })
    .optional()
    .meta({ description: "At most this many rows (events) per second; absent: as fast as the dispatcher writes them." }),
}).meta({ id: "BackfillCreate" });

export type BackfillCreateInput = z.output<typeof backfillCreateSchema>;

export const backfillViewSchema = z
  .object({
    id: z.uuid(),
    webhook_id: z.uuid(),
    table: z.string(),
    event_type: z.string().meta({ description: "The type of the events it sends: <prefix>.backfill." }),
    where: z.string().nullable(),
    rate_per_s: z.number().nullable(),
    key_columns: z.array(z.string()).meta({ description: "The primary key: rows are sent in its order." }),
    cursor: z.array(z.string().nullable()).nullable().meta({ description: "The last key sent (text forms of the key columns); null before the first batch." }),
    rows_total: z.number().int().nullable().meta({ description: "Rows that matched when it started (null when counting them took too long)." }),
    rows_sent: z.number().int(),
    state: z.enum(BACKFILL_STATES).meta({
      description:
        "running: the dispatcher sends batches; paused: stopped (by a user, or because the webhook is disabled), resumable; " +
        "done: every row sent; cancelled; failed: see error (resumable once fixed).",
    }),
    error: z.string().nullable(),
    created_at: z.date(),
    updated_at: z.date(),
    finished_at: z.date().nullable(),
  })
  .meta({ id: "Backfill" });

export type BackfillView = z.output<typeof backfillViewSchema>;

export const backfillCountSchema = z
  .object({
    dry_run: z.literal(true),
    table: z.string(),
    event_type: z.string(),
    rows: z.number().int().meta({ description: "Rows that would be sent now." }),
  })
  .meta({ id: "BackfillCount" });

export type BackfillCount = z.output<typeof backfillCountSchema>;

export type BackfillRow = Selectable<BackfillTable> & { event_prefix: string | null };

export function toBackfillView(row: BackfillRow): BackfillView {
  const cursor = Array.isArray(row.cursor) ? (row.cursor as unknown[]).map((v) => (v === null ? null : String(v))) : null;
  return {
    id: row.id,
    webhook_id: row.subscription_id,
    table: row.table_name,
    event_type: `${row.event_prefix ?? "(untracked)"}.backfill`,
    where: row.where_sql,
    rate_per_s: row.rate_per_s,
    key_columns: row.key_columns,
    cursor,
    rows_total: row.rows_total === null ? null : Number(row.rows_total),
    rows_sent: Number(row.rows_sent),
    state: row.state,
    error: row.error,
    created_at: row.created_at,
    updated_at: row.updated_at,
    finished_at: row.finished_at,
  };
}

/**
 * Why a --where text is refused before Postgres sees it, or null. It is placed inside
 * `where (…)` of the backfill's query, so it must be one expression that cannot close that
 * parenthesis: parentheses balance outside quotes, and nothing ends the statement or hides
 * text (;, comments). Backslashes and dollar quotes are refused outright, so no quoting rule
 * (E'' strings, standard_conforming_strings off, $tag$) can make us misread where a string ends.
 */
export function whereProblem(text: string): string | null {
  if (text.includes("\\")) return "backslashes are not accepted in a backfill condition";
  let depth = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return `an unterminated ${c === "'" ? "string" : "quoted name"} starting at character ${i + 1}`;
      i = end + 1;
      // '' and "" inside a quote are an escaped quote: the scan simply continues with the next quote.
      continue;
    }
    if (c === "$") return "dollar signs (dollar quotes, parameters) are not accepted in a backfill condition";
    if (c === ";") return "expected one condition: ; is not accepted";
    if (c === "-" && text[i + 1] === "-") return "comments (--) are not accepted in a backfill condition";
    if (c === "/" && text[i + 1] === "*") return "comments (/* */) are not accepted in a backfill condition";
    if (c === "(") depth++;
    if (c === ")" && --depth < 0) return `unbalanced parentheses: a ) at character ${i + 1} closes nothing`;
    i++;
  }
  if (depth !== 0) return "unbalanced parentheses: a ( is never closed";
  return null;
}
