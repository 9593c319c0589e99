// Inbound sources (rows of webhooks.inbound_sources): tenant-scoped create, list, show, change
// and delete, as webhooks are. Secrets go in and never come out, except a secret generated
// here, which create returns once. Shapes live in model/inbound.ts.
import { randomBytes } from "node:crypto";
import { sql, type Kysely, type UpdateObject } from "kysely";
import type { Connection } from "../db/connection";
import type { Database } from "../db/schema";
import { DomainError, notFound } from "../errors";
import { generateSecret } from "../delivery/sign";
import {
  GENERATED_SECRET_SCHEMES,
  sourceProblem,
  toSourceView,
  type SourceCreateInput,
  type SourcePatch,
  type SourceRow,
  type SourceView,
} from "../model/inbound";
import { isUuid } from "./cursor";
import { forgetInboundSource } from "./inbound-receive";
import type { Scope } from "./scope";

const sourceNotFound = (id: string) => notFound("inbound_source_not_found", "inbound source", id);

const SOURCE_COLUMNS = [
  "id", "tenant", "slug", "name", "enabled", "verify", "secrets", "hmac", "key_header", "tolerance_s", "dedupe",
  "allowed_tenants", "max_body_bytes", "rate_limit_per_s", "relay_prefix", "created_at", "updated_at",
] as const;

/** Live sources this scope sees: another tenant's or a deleted one does not exist. */
function visibleSources(db: Kysely<Database>, scope: Scope) {
  return db
    .selectFrom("webhooks.inbound_sources")
    .select(SOURCE_COLUMNS)
    .where("deleted_at", "is", null)
    .$if(scope.tenant !== null, (q) => q.where("tenant", "=", scope.tenant));
}

/** Finds a source by id or slug. */
async function findRow(db: Kysely<Database>, scope: Scope, idOrSlug: string): Promise<SourceRow> {
  const row = await visibleSources(db, scope)
    .where(isUuid(idOrSlug) ? "id" : "slug", "=", idOrSlug)
    .executeTakeFirst();
  if (!row) throw sourceNotFound(idOrSlug);
  return row as SourceRow;
}

function tenantFor(scope: Scope, requested: string | null | undefined): string | null {
  if (scope.tenant === null) return requested ?? null;
  if (requested !== undefined && requested !== scope.tenant) {
    const message = "a tenant key manages its own tenant's sources only; leave tenant out";
    throw new DomainError("invalid_input", `tenant: ${message}`, [{ path: "tenant", message }]);
  }
  return scope.tenant;
}

function check(scope: Scope, s: Parameters<typeof sourceProblem>[0]): void {
  const problem = sourceProblem(s);
  if (problem) throw new DomainError("invalid_input", `${problem.path}: ${problem.message}`, [problem]);
  if (scope.tenant !== null && s.allowed_tenants !== null) {
    const message = "only an admin key sets allowed_tenants";
    throw new DomainError("invalid_input", `allowed_tenants: ${message}`, [{ path: "allowed_tenants", message }]);
  }
}

/** A Postgres unique violation on the live slug index becomes a 409 naming the slug. */
async function slugConflict<T>(slug: string | undefined, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if ((e as { code?: string }).code === "23505") {
      const message = `a source with slug ${JSON.stringify(slug)} exists already`;
      throw new DomainError("conflict", `slug: ${message}`, [{ path: "slug", message }]);
    }
    throw e;
  }
}

function newSecret(verify: SourceCreateInput["verify"]): string {
  return verify === "standard" ? generateSecret() : `pgwin_${randomBytes(24).toString("base64url")}`;
}

export async function createSource(
  conn: Connection,
  scope: Scope,
  input: SourceCreateInput,
): Promise<{ source: SourceView; secret: string | null }> {
  const tenant = tenantFor(scope, input.tenant);
  let generated: string | null = null;
  let secrets = input.secrets ?? [];
  if (secrets.length === 0 && GENERATED_SECRET_SCHEMES.has(input.verify)) {
    generated = newSecret(input.verify);
    secrets = [generated];
  }
  const values = {
    tenant,
    slug: input.slug,
    name: input.name ?? null,
    enabled: input.enabled ?? true,
    verify: input.verify,
    secrets,
    hmac: input.hmac ?? null,
    key_header: input.key_header ?? null,
    tolerance_s: input.tolerance_s,
    dedupe: input.dedupe ?? null,
    allowed_tenants: input.allowed_tenants ?? null,
    max_body_bytes: input.max_body_bytes,
    rate_limit_per_s: input.rate_limit_per_s ?? null,
    relay_prefix: input.relay_prefix ?? null,
  };
  check(scope, values);
  const row = await slugConflict(input.slug, () =>
    conn.db
      .insertInto("webhooks.inbound_sources")
      .values(values)
      .returning(SOURCE_COLUMNS)
      .executeTakeFirstOrThrow(),
  );
  return { source: toSourceView(row as SourceRow), secret: generated };
}

export interface SourceListQuery {
  enabled?: boolean | undefined;
  limit: number;
  /** The last id of the previous page (sources are listed oldest first). */
  cursor?: string | undefined;
}

export async function listSources(conn: Connection, scope: Scope, q: SourceListQuery): Promise<{ items: SourceView[]; next_cursor: string | null }> {
  if (q.cursor !== undefined && !isUuid(q.cursor)) {
    const message = "expected a cursor from a previous page's next_cursor";
    throw new DomainError("invalid_input", `cursor: ${message}`, [{ path: "cursor", message }]);
  }
  const cursor = q.cursor;
  const rows = (await visibleSources(conn.db, scope)
    .$if(q.enabled !== undefined, (qb) => qb.where("enabled", "=", q.enabled ?? true))
    // The cursor row's own timestamp, read in SQL: a JS Date would drop its microseconds.
    .$if(cursor !== undefined, (qb) =>
      qb.where(sql<boolean>`(created_at, id) > (select c.created_at, c.id from webhooks.inbound_sources c where c.id = ${cursor ?? null}::uuid)`),
    )
    .orderBy("created_at")
    .orderBy("id")
    .limit(q.limit + 1)
    .execute()) as SourceRow[];
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return { items: page.map(toSourceView), next_cursor: rows.length > q.limit && last ? last.id : null };
}

export async function getSource(conn: Connection, scope: Scope, idOrSlug: string): Promise<SourceView> {
  return toSourceView(await findRow(conn.db, scope, idOrSlug));
}

export async function updateSource(conn: Connection, scope: Scope, idOrSlug: string, patch: SourcePatch): Promise<SourceView> {
  const row = await findRow(conn.db, scope, idOrSlug);
  const merged = {
    verify: row.verify,
    secrets: patch.secrets ?? row.secrets,
    hmac: patch.hmac === undefined ? row.hmac : patch.hmac,
    tenant: row.tenant,
    allowed_tenants: patch.allowed_tenants === undefined ? row.allowed_tenants : patch.allowed_tenants,
  };
  check(scope, merged);
  const set: UpdateObject<Database, "webhooks.inbound_sources"> = { updated_at: sql`now()` };
  if (patch.slug !== undefined) set.slug = patch.slug;
  if (patch.name !== undefined) set.name = patch.name;
  if (patch.enabled !== undefined) set.enabled = patch.enabled;
  if (patch.secrets !== undefined) set.secrets = patch.secrets;
  if (patch.hmac !== undefined) set.hmac = patch.hmac;
  if (patch.key_header !== undefined) set.key_header = patch.key_header;
  if (patch.tolerance_s !== undefined) set.tolerance_s = patch.tolerance_s;
  if (patch.dedupe !== undefined) set.dedupe = patch.dedupe;
  if (patch.allowed_tenants !== undefined) set.allowed_tenants = patch.allowed_tenants;
  if (patch.max_body_bytes !== undefined) set.max_body_bytes = patch.max_body_bytes;
  if (patch.rate_limit_per_s !== undefined) set.rate_limit_per_s = patch.rate_limit_per_s;
  if (patch.relay_prefix !== undefined) set.relay_prefix = patch.relay_prefix;
  const updated = await slugConflict(patch.slug, () =>
    conn.db
      .updateTable("webhooks.inbound_sources")
      .set(set)
      .where("id", "=", row.id)
      .where("deleted_at", "is", null)
      .returning(SOURCE_COLUMNS)
      .executeTakeFirst(),
  );
  if (!updated) throw sourceNotFound(idOrSlug);
  forgetInboundSource(row.slug, updated.slug);
  return toSourceView(updated as SourceRow);
}

/**
 * Deletes the source: its URL answers 404 from now on; its events stay until pruned, and those
 * not processed yet (pending, processing) become failed, since no worker can claim them any more.
 */
export async function deleteSource(conn: Connection, scope: Scope, idOrSlug: string): Promise<void> {
  const row = await findRow(conn.db, scope, idOrSlug);
  await conn.db.transaction().execute(async (tx) => {
    await tx
      .updateTable("webhooks.inbound_sources")
      .set({ deleted_at: sql`now()`, enabled: false, updated_at: sql`now()` })
      .where("id", "=", row.id)
      .execute();
    await tx
      .updateTable("webhooks.inbound_events")
      .set({ status: "failed", processed_at: sql`now()`, locked_at: null, last_error: "the source was deleted before this event was processed" })
      .where("source_id", "=", row.id)
      .where("status", "in", ["pending", "processing"])
      .execute();
  });
  forgetInboundSource(row.slug);
}
