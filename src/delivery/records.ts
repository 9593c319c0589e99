// The records a payload reads besides its event: the tenant's record (organization) and the
// source table's primary key (thin payloads, summaries). Read in batches: every lookup made in
// the same turn of the event loop shares one query, and answers are kept for a few seconds,
// so a burst of deliveries costs one round trip, not one per delivery.
import type { Queryable } from "../db/connection";
import { parseExact } from "./event-json";
import type { Organization } from "./presets";

/** How long an answer is reused: an edited tenant record shows in bodies rendered after this. */
const TTL_MS = 5_000;
const MAX_KEPT = 10_000;

interface Kept<T> {
  value: T;
  at: number;
}

/** Collects the keys asked for in one turn and reads them with one query. */
class BatchReader<T> {
  private readonly kept = new Map<string, Kept<T>>();
  private waiting = new Map<string, { resolve: (v: T) => void; reject: (e: unknown) => void }[]>();
  private scheduled = false;

  constructor(private readonly read: (keys: string[]) => Promise<Map<string, T>>, private readonly missing: T) {}

  get(key: string): Promise<T> {
    const k = this.kept.get(key);
    if (k !== undefined && Date.now() - k.at < TTL_MS) return Promise.resolve(k.value);
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(key) ?? [];
      list.push({ resolve, reject });
      this.waiting.set(key, list);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting;
    this.waiting = new Map();
    this.scheduled = false;
    try {
      const found = await this.read([...batch.keys()]);
      const now = Date.now();
      if (this.kept.size > MAX_KEPT) this.kept.clear();
      for (const [key, list] of batch) {
        const value = found.get(key) ?? this.missing;
        this.kept.set(key, { value, at: now });
        for (const w of list) w.resolve(value);
      }
    } catch (e) {
      for (const list of batch.values()) for (const w of list) w.reject(e);
    }
  }
}

export interface RecordReader {
  /** The tenant's record, or null when there is none (or the event has no tenant). */
  organization(tenant: string | null): Promise<Organization | null>;
  /** The primary key columns of the tracked table an event came from (outbox.source_table), or null. */
  primaryKey(sourceTable: string | null): Promise<string[] | null>;
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === "string" ? v : JSON.stringify(v));

/** Reads tenant records from webhooks.tenants, or from the relation webhooks.set_tenant_source() named. */
export async function readOrganizations(sql: Queryable, ids: string[]): Promise<Map<string, Organization>> {
  const [source] = await sql<{ relation: string }[]>`select relation::text as relation from webhooks.tenant_source`;
  // regclass as text is a quoted, schema-qualified name where needed: safe to splice in.
  const relation = source?.relation ?? "webhooks.tenants";
  const rows = await sql<{ r: string }[]>`
    select to_jsonb(t)::text as r from ${sql.unsafe(relation)} t where t.id::text = any(${ids}::text[])`;
  const out = new Map<string, Organization>();
  for (const { r } of rows) {
    const row = parseExact(r).value as Record<string, unknown>;
    const id = str(row.id);
    if (id === null) continue;
    out.set(id, { id, name: str(row.name), slug: str(row.slug), metadata: row.metadata ?? {} });
  }
  return out;
}

async function readPrimaryKeys(sql: Queryable, sources: string[]): Promise<Map<string, string[]>> {
  // outbox.source_table is schema.table as the trigger saw it (unquoted).
  const rows = await sql<{ source: string; primary_key: string[] }[]>`
    select n.nspname || '.' || c.relname as source, t.primary_key
      from webhooks.tracked_tables t
      join pg_catalog.pg_class c on c.oid = t.table_name
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname || '.' || c.relname = any(${sources}::text[])`;
  return new Map(rows.map((r) => [r.source, r.primary_key]));
}

const readers = new WeakMap<object, RecordReader>();

/** The reader for a connection (one per process and pool). */
export function recordReader(sql: Queryable): RecordReader {
  let r = readers.get(sql);
  if (r === undefined) {
    const orgs = new BatchReader<Organization | null>((ids) => readOrganizations(sql, ids), null);
    const keys = new BatchReader<string[] | null>((s) => readPrimaryKeys(sql, s), null);
    const reader: RecordReader = {
      organization: (tenant) => (tenant === null ? Promise.resolve(null) : orgs.get(tenant)),
      primaryKey: (source) => (source === null ? Promise.resolve(null) : keys.get(source)),
    };
    readers.set(sql, reader);
    r = reader;
  }
  return r;
}
