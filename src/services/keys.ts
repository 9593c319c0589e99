// API keys: created once and shown once (`pgw_…`), stored as a SHA-256 hash plus a short
// prefix to recognise them by. A key without a tenant is an admin key.
import { createHash, randomBytes } from "node:crypto";
import { sql } from "kysely";
import { z } from "zod";
import type { Connection } from "../db/connection";
import { notFound } from "../errors";
import { isUuid } from "./cursor";
import type { Scope } from "./scope";
import { parseInput, singleLine, storable, strictObject } from "../model/validation";

const KEY_PREFIX = "pgw_";
/** Characters of the key kept in clear, enough to tell keys apart in a list. */
const SHOWN_PREFIX_LENGTH = KEY_PREFIX.length + 8;
/** last_used_at is written at most this often per key, so busy keys cost no write per request. */
const LAST_USED_RESOLUTION = "1 minute";

export interface ApiKeyView {
  id: string;
  name: string | null;
  /** null: an admin key. */
  tenant: string | null;
  key_prefix: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

export interface CreatedKey {
  id: string;
  /** The key itself; shown only here. */
  key: string;
  tenant: string | null;
  name: string | null;
  key_prefix: string;
  created_at: Date;
}

const keyInputSchema = strictObject({
  tenant: z.string().min(1, { error: "expected a non-empty tenant, or leave it out for an admin key" }).max(200).check(storable).nullable().optional(),
  name: z.string().min(1, { error: "expected a non-empty name" }).max(200).check(singleLine()).nullable().optional(),
});

const VIEW_COLUMNS = ["id", "name", "tenant", "key_prefix", "created_at", "last_used_at", "revoked_at"] as const;

function hashKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

export async function createKey(conn: Connection, input: { tenant?: string | null; name?: string | null }): Promise<CreatedKey> {
  const { tenant, name } = parseInput(keyInputSchema, input);
  const key = KEY_PREFIX + randomBytes(32).toString("base64url");
  const row = await conn.db
    .insertInto("webhooks.api_keys")
    .values({ name: name ?? null, tenant: tenant ?? null, key_prefix: key.slice(0, SHOWN_PREFIX_LENGTH), key_hash: hashKey(key) })
    .returning(["id", "created_at"])
    .executeTakeFirstOrThrow();
  return { id: row.id, key, tenant: tenant ?? null, name: name ?? null, key_prefix: key.slice(0, SHOWN_PREFIX_LENGTH), created_at: row.created_at };
}

/** Every key, revoked ones included, oldest first; never the keys themselves. */
export async function listKeys(conn: Connection): Promise<ApiKeyView[]> {
  return conn.db.selectFrom("webhooks.api_keys").select(VIEW_COLUMNS).orderBy("created_at").orderBy("id").execute();
}

/** Revokes at once; revoking a revoked key changes nothing and answers the same. */
export async function revokeKey(conn: Connection, id: string): Promise<ApiKeyView> {
  if (!isUuid(id)) throw notFound("key_not_found", "API key", id);
  const row = await conn.db
    .updateTable("webhooks.api_keys")
    .set({ revoked_at: sql`coalesce(revoked_at, now())` })
    .where("id", "=", id)
    .returning(VIEW_COLUMNS)
    .executeTakeFirst();
  if (!row) throw notFound("key_not_found", "API key", id);
  return row;
}

/** The scope a bearer token grants, or null for a missing, unknown or revoked key. */
export async function authenticate(conn: Connection, bearerToken: string): Promise<Scope | null> {
  // postgres.js tagged SQL: this runs on every API request, and a kysely query reserves a connection first.
  if (!bearerToken.startsWith(KEY_PREFIX) || bearerToken.length > 200) return null;
  const [row] = await conn.sql<{ id: string; tenant: string | null; stale: boolean }[]>`
    select id, tenant, (last_used_at is null or last_used_at < now() - ${LAST_USED_RESOLUTION}::interval) as stale
      from webhooks.api_keys
     where key_hash = ${hashKey(bearerToken)} and revoked_at is null`;
  if (!row) return null;
  if (row.stale) await conn.sql`update webhooks.api_keys set last_used_at = now() where id = ${row.id}`;
  return { tenant: row.tenant };
}

/** What the admin UI's session is bound to: a live key, and the secret its session cookies are signed with. */
export interface SessionKey {
  id: string;
  tenant: string | null;
  /** The key's stored hash: server-side only, so it can sign the key's session cookies. */
  signingSecret: string;
}

/** The live key behind a bearer token (as authenticate), or null. */
export async function sessionKeyFor(conn: Connection, bearerToken: string): Promise<SessionKey | null> {
  if ((await authenticate(conn, bearerToken)) === null) return null;
  return sessionKeyWhere(conn, "key_hash", hashKey(bearerToken));
}

/** The key with this id if it is not revoked, or null: a revoked key ends its sessions at once. */
export async function sessionKeyById(conn: Connection, id: string): Promise<SessionKey | null> {
  if (!isUuid(id)) return null;
  return sessionKeyWhere(conn, "id", id);
}

async function sessionKeyWhere(conn: Connection, column: "id" | "key_hash", value: string): Promise<SessionKey | null> {
  const row = await conn.db
    .selectFrom("webhooks.api_keys")
    .select(["id", "tenant", "key_hash"])
    .where(column, "=", value)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row ? { id: row.id, tenant: row.tenant, signingSecret: row.key_hash } : null;
}
