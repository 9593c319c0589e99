// Backfills (rows of webhooks.backfills): the existing rows of a tracked table sent once to one
// webhook. Starting one checks the table, its key and the --where condition, counts the rows
// and queues the dispatcher's job; status, pause, resume and cancel. Tenant-scoped through the
// webhook: a tenant key sees only its webhooks' backfills, and reads only its tenant's rows.
import type { Connection, Queryable } from "../db/connection";
import { DomainError, notFound } from "../errors";
import { enqueueBackfill } from "../dispatch/jobs";
import {
  toBackfillView,
  whereProblem,
  type BackfillCount,
  type BackfillCreateInput,
  type BackfillRow,
  type BackfillView,
} from "../model/backfill";
import { isUuid } from "./cursor";
import type { Scope } from "./scope";
import { getWebhook } from "./webhooks";

/** How long planning a --where condition may take. */
const PLAN_TIMEOUT_MS = 2000;
/** How long counting the rows may take; past it, rows_total stays null. */
const COUNT_TIMEOUT_MS = 30_000;

const invalid = (path: string, message: string) => new DomainError("invalid_input", `${path}: ${message}`, [{ path, message }]);
const backfillNotFound = (id: string) => notFound("not_found", "backfill", id);

interface TableInfo {
  oid: string;
  qualified: string;
  name: string;
  event_prefix: string;
  tenant_column: string | null;
  key_columns: string[];
}

/** The tracked table `name` names, with its primary key in index order; invalid_input otherwise. */
async function trackedTable(sql: Queryable, name: string): Promise<TableInfo> {
  let rows: (Omit<TableInfo, "key_columns"> & { key_columns: string[] | null })[];
  try {
    rows = await sql`
      select c.oid::text as oid, format('%I.%I', n.nspname, c.relname) as qualified, format('%s.%s', n.nspname, c.relname) as name,
             t.event_prefix,
             (select a.attname::text from pg_attribute a
               where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                 and (a.attname = t.tenant_column or a.attnum = t.tenant_attnum)
               order by a.attname = t.tenant_column desc limit 1) as tenant_column,
             (select array_agg(a.attname::text order by k.i)
                from pg_index ix
                cross join lateral unnest(ix.indkey) with ordinality k(attnum, i)
                join pg_attribute a on a.attrelid = ix.indrelid and a.attnum = k.attnum
               where ix.indrelid = c.oid and ix.indisprimary) as key_columns
        from webhooks.tracked_tables t
        join pg_class c on c.oid = t.table_name
        join pg_namespace n on n.oid = c.relnamespace
       where t.table_name = to_regclass(${name})`;
  } catch {
    rows = [];
  }
  const t = rows[0];
  // One message whether the table is missing or untracked: a tenant key learns nothing of untracked tables.
  if (!t) throw invalid("table", `${JSON.stringify(name)} is not a tracked table (track it first: pg-webhooks track ${name})`);
  if (t.key_columns === null || t.key_columns.length === 0) {
    throw invalid("table", `${t.name} has no primary key: a backfill goes in key order and resumes after the last key it sent`);
  }
  return { ...t, key_columns: t.key_columns };
}

/** Postgres's message for a failed statement, without the driver's wrapping. */
const pgMessage = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Runs `body` in a read-only transaction with a statement timeout and capture's search_path
 * (pg_catalog): a condition can neither write nor find functions of the caller's schemas.
 */
async function readOnly<T>(conn: Connection, timeoutMs: number, body: (tx: Queryable) => Promise<T>): Promise<T> {
  return conn.sql.begin("read only", async (tx) => {
    await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true), set_config('search_path', 'pg_catalog, pg_temp', true)`;
    return body(tx);
  }) as Promise<T>;
}

/** The rows' condition: the --where, and the webhook's tenant (as capture computes the event's tenant). */
function rowCondition(sql: Queryable, t: TableInfo, where: string | undefined, tenant: string | null) {
  const cond = sql.unsafe(`(${where ?? "true"})`);
  if (tenant === null) return sql`${cond}`;
  // tenantless tables were refused before
  return sql`${cond} and (pg_catalog.to_jsonb(x.${sql(t.tenant_column ?? "")}) #>> '{}') = ${tenant}`;
}

async function checkWhere(conn: Connection, t: TableInfo, where: string): Promise<void> {
  const problem = whereProblem(where);
  if (problem !== null) throw invalid("where", problem);
  try {
    await readOnly(conn, PLAN_TIMEOUT_MS, (tx) => tx`explain select from ${tx.unsafe(t.qualified)} x where ${tx.unsafe(`(${where})`)}`);
  } catch (e) {
    throw invalid("where", `Postgres cannot run it over ${t.name}: ${pgMessage(e)}`);
  }
}

async function countRows(conn: Connection, t: TableInfo, where: string | undefined, tenant: string | null): Promise<number | null> {
  try {
    const [r] = await readOnly(
      conn,
      COUNT_TIMEOUT_MS,
      (tx) => tx<{ n: string }[]>`select count(*)::text as n from ${tx.unsafe(t.qualified)} x where ${rowCondition(tx, t, where, tenant)}`,
    );
    return r ? Number(r.n) : 0;
  } catch (e) {
    if (e instanceof Error && "code" in e && (e as { code: unknown }).code === "57014") return null; // statement timeout
    throw invalid("where", `Postgres cannot run it over ${t.name}: ${pgMessage(e)}`);
  }
}

interface Prepared {
  webhookId: string;
  table: TableInfo;
  tenant: string | null;
  eventType: string;
  total: number | null;
}

/**
 * Checks what a backfill would read and counts it. --where is for admin keys only: it is SQL,
 * and a tenant key could read other tenants' rows (or other tables) through it. A
 * tenant-scoped webhook reads only its tenant's rows.
 */
async function prepare(conn: Connection, scope: Scope, webhookId: string, input: BackfillCreateInput, starting: boolean): Promise<Prepared> {
  const webhook = await getWebhook(conn, scope, webhookId);
  if (starting && !webhook.is_active) {
    throw new DomainError("conflict", `webhook ${webhook.id} is disabled: enable it first (its events would not be delivered)`);
  }
  if (input.where !== undefined && scope.tenant !== null) {
    throw invalid("where", "only an admin key may give a SQL condition (it could read other tenants' rows); a tenant key backfills all of its tenant's rows");
  }
  const t = await trackedTable(conn.sql, input.table);
  const tenant = webhook.tenant;
  if (tenant !== null && t.tenant_column === null) {
    throw invalid("table", `${t.name} has no tenant column: the rows of the webhook's tenant (${tenant}) cannot be told apart`);
  }
  if (input.where !== undefined) await checkWhere(conn, t, input.where);
  const total = await countRows(conn, t, input.where, tenant);
  return { webhookId: webhook.id, table: t, tenant, eventType: `${t.event_prefix}.backfill`, total };
}

/** How many rows a backfill of `input.table` would send now; starts nothing, writes nothing. */
export async function countBackfill(conn: Connection, scope: Scope, webhookId: string, input: BackfillCreateInput): Promise<BackfillCount> {
  const p = await prepare(conn, scope, webhookId, input, false);
  if (p.total === null) throw invalid("where", `counting the rows took longer than ${COUNT_TIMEOUT_MS / 1000} s`);
  return { dry_run: true, table: p.table.name, event_type: p.eventType, rows: p.total };
}

/** Starts a backfill of `input.table` to the webhook: the dispatcher's job sends it. */
export async function startBackfill(conn: Connection, scope: Scope, webhookId: string, input: BackfillCreateInput): Promise<BackfillView> {
  const { webhookId: id, table: t, tenant, total } = await prepare(conn, scope, webhookId, input, true);
  const row = await conn.sql.begin(async (tx) => {
    const [b] = await tx<{ id: string }[]>`
      insert into webhooks.backfills (subscription_id, tenant, table_name, where_sql, rate_per_s, key_columns, rows_total)
      values (${id}, ${tenant}, ${t.oid}::oid::regclass, ${input.where ?? null}, ${input.rate ?? null}, ${t.key_columns}, ${total})
      returning id`;
    if (!b) throw new Error("insert into webhooks.backfills returned nothing");
    await enqueueBackfill(tx, b.id);
    return b;
  });
  return getBackfill(conn, scope, id, row.id);
}

async function rowsOf(sql: Queryable, webhookId: string, backfillId?: string, lock = false): Promise<BackfillRow[]> {
  const rows = await sql<BackfillRow[]>`
    select b.id, b.subscription_id, b.tenant,
           coalesce((select format('%s.%s', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                      where c.oid = b.table_name), b.table_name::text) as table_name, b.where_sql, b.rate_per_s, b.key_columns, b.cursor,
           b.rows_total::text as rows_total, b.rows_sent::text as rows_sent, b.state, b.error, b.created_at, b.updated_at,
           b.finished_at, t.event_prefix
      from webhooks.backfills b
      left join webhooks.tracked_tables t on t.table_name = b.table_name
     where b.subscription_id = ${webhookId}
       ${backfillId === undefined ? sql`` : sql`and b.id = ${backfillId}`}
     order by b.created_at desc, b.id
     ${lock ? sql`for update of b` : sql``}`;
  return rows;
}

/** The webhook's backfills, newest first. */
export async function listBackfills(conn: Connection, scope: Scope, webhookId: string): Promise<BackfillView[]> {
  const webhook = await getWebhook(conn, scope, webhookId);
  return (await rowsOf(conn.sql, webhook.id)).map(toBackfillView);
}

export async function getBackfill(conn: Connection, scope: Scope, webhookId: string, backfillId: string): Promise<BackfillView> {
  const webhook = await getWebhook(conn, scope, webhookId);
  if (!isUuid(backfillId)) throw backfillNotFound(backfillId);
  const [row] = await rowsOf(conn.sql, webhook.id, backfillId);
  if (!row) throw backfillNotFound(backfillId);
  return toBackfillView(row);
}

export type BackfillAction = "cancel" | "pause" | "resume";

/**
 * cancel: a running or paused backfill stops for good (events already written still go out).
 * pause: a running one stops after its current batch. resume: a paused or failed one runs again
 * from its cursor. Anything else is a conflict (409) naming the state.
 */
export async function changeBackfill(
  conn: Connection,
  scope: Scope,
  webhookId: string,
  backfillId: string,
  action: BackfillAction,
): Promise<BackfillView> {
  const webhook = await getWebhook(conn, scope, webhookId);
  if (!isUuid(backfillId)) throw backfillNotFound(backfillId);
  await conn.sql.begin(async (tx) => {
    const [row] = await rowsOf(tx, webhook.id, backfillId, true);
    if (!row) throw backfillNotFound(backfillId);
    const from: Record<BackfillAction, string[]> = { cancel: ["running", "paused", "failed"], pause: ["running"], resume: ["paused", "failed"] };
    if (action === "resume" && row.state === "running") return;
    if (action === "pause" && row.state === "paused") return;
    if (action === "cancel" && row.state === "cancelled") return;
    if (!from[action].includes(row.state)) {
      throw new DomainError("conflict", `backfill ${backfillId} is ${row.state}: it cannot be ${action === "cancel" ? "cancelled" : action + "d"}`);
    }
    const state = action === "cancel" ? "cancelled" : action === "pause" ? "paused" : "running";
    await tx`
      update webhooks.backfills
         set state = ${state}, error = null, updated_at = now(),
             finished_at = ${state === "cancelled" ? tx`now()` : tx`null`}
       where id = ${backfillId}`;
    if (state === "running") await enqueueBackfill(tx, backfillId);
  });
  return getBackfill(conn, scope, webhook.id, backfillId);
}

/** The webhook a backfill belongs to, as this scope sees it (not found otherwise). */
export async function webhookOfBackfill(conn: Connection, scope: Scope, backfillId: string): Promise<string> {
  if (!isUuid(backfillId)) throw backfillNotFound(backfillId);
  const [row] = await conn.sql<{ subscription_id: string }[]>`
    select subscription_id from webhooks.backfills where id = ${backfillId}`;
  if (!row) throw backfillNotFound(backfillId);
  try {
    return (await getWebhook(conn, scope, row.subscription_id)).id;
  } catch {
    throw backfillNotFound(backfillId);
  }
}
