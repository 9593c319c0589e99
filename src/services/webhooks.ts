// Webhooks (rows of webhooks.subscriptions): the tenant-scoped commands on them (CRUD, enabling
// and disabling, secrets, rotation). Their input and view shapes live in model/webhook.ts.
import { randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { sql, type Kysely, type UpdateObject } from "kysely";
import type { Connection, Queryable } from "../db/connection";
import type { Database } from "../db/schema";
import { DomainError, notFound } from "../errors";
import { generateSecretFor, publicKeyOf, signingSecrets } from "../delivery/sign";
import { assertUrlAllowed } from "../delivery/ssrf";
import { enqueueDeliveries, type QueuedDelivery } from "../dispatch/jobs";
import { failParked } from "../dispatch/health";
import {
  DEFAULT_ROTATION_GRACE_MS,
  MAX_ROTATION_GRACE_MS,
  SWITCHED_NOW,
  SWITCH_AT_MESSAGE,
  rotateSecretSchema,
  rotationSummary,
  type RotatedSecret,
} from "../model/rotation";
import { parseInput } from "../model/validation";
import {
  STANDARD_SECRET_MESSAGE,
  isStandardSecret,
  secretProblem,
  toWebhookView,
  type WebhookCreateInput,
  type WebhookPatch,
  type WebhookRow,
  type WebhookView,
} from "../model/webhook";
import { cursorTs, decodeCursor, isUuid, paginate, pastCursor } from "./cursor";
import { HEALTH_COLUMNS, affected, all, build, first, type On } from "./query";
import type { Scope } from "./scope";
import { checkPayload, renderPreview, type PreviewItem } from "./preview";

export interface WriteOptions {
  /** WEBHOOKS_ALLOW_PRIVATE_TARGETS: accept loopback and private-network URLs. */
  allowPrivateTargets: boolean;
}

/** What an update of a subscriptions row sets (values or SQL expressions such as now()). */
type SubscriptionSet = UpdateObject<Database, "webhooks.subscriptions">;

const webhookNotFound = (id: string) => notFound("webhook_not_found", "webhook", id);

/** Live webhooks (`s`) this scope sees, with their health (`h`): another tenant's or a deleted one does not exist. */
function visibleWebhooks(db: Kysely<Database>, scope: Scope) {
  return db
    .selectFrom("webhooks.subscriptions as s")
    .leftJoin("webhooks.endpoint_health as h", "h.subscription_id", "s.id")
    .selectAll("s")
    .select(HEALTH_COLUMNS)
    .where("s.deleted_at", "is", null)
    .$if(scope.tenant !== null, (q) => q.where("s.tenant", "=", scope.tenant));
}

/** The live row as this scope sees it, locked for the caller's transaction when `lock`. */
async function findRow(on: On, scope: Scope, id: string, lock = false): Promise<WebhookRow> {
  if (!isUuid(id)) throw webhookNotFound(id);
  const row = await first(
    on,
    visibleWebhooks(build, scope)
      .where("s.id", "=", id)
      .$if(lock, (q) => q.forUpdate("s")),
  );
  if (!row) throw webhookNotFound(id);
  return row;
}

/** Changes the webhook's row and reads it back with its health, in one statement. */
async function updateRow(on: On, id: string, set: SubscriptionSet): Promise<WebhookRow> {
  const row = await first(
    on,
    build
      .with("s", (db) => db.updateTable("webhooks.subscriptions").set(set).where("id", "=", id).returningAll())
      .selectFrom("s")
      .leftJoin("webhooks.endpoint_health as h", "h.subscription_id", "s.id")
      .selectAll("s")
      .select(HEALTH_COLUMNS),
  );
  if (!row) throw webhookNotFound(id);
  return row;
}

function checkUrl(url: string, opts: WriteOptions): void {
  try {
    assertUrlAllowed(url, opts.allowPrivateTargets);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const code = e instanceof DomainError ? e.code : "invalid_input";
    throw new DomainError(code, `url: ${message}`, [{ path: "url", message }]);
  }
}

function tenantFor(scope: Scope, requested: string | null | undefined): string | null | undefined {
  if (scope.tenant === null) return requested;
  if (requested !== undefined && requested !== scope.tenant) {
    const message = "a tenant key manages its own tenant's webhooks only; leave tenant out";
    throw new DomainError("invalid_input", `tenant: ${message}`, [{ path: "tenant", message }]);
  }
  return scope.tenant;
}

/** Stored lower-cased and once each: header names are case-insensitive. */
const secretHeaderNames = (names: string[]) => [...new Set(names.map((n) => n.toLowerCase()))];

export async function createWebhook(
  conn: Connection,
  scope: Scope,
  input: WebhookCreateInput,
  opts: WriteOptions,
): Promise<{ webhook: WebhookView; secret: string; preview: PreviewItem[] }> {
  const tenant = tenantFor(scope, input.tenant) ?? null;
  checkUrl(input.url, opts);
  checkPayload(input.payload);
  const secret = input.secret ?? generateSecretFor(input.signature.scheme);
  const id = randomUUID();
  const events = [...new Set(input.events)];
  // Rendered before the row exists: a template a guard cuts off is refused with nothing written.
  const preview = await renderPreview(
    conn,
    { id, name: input.name ?? null, tenant, events, payload: input.payload, big_numbers: input.big_numbers },
    { refuseCutOff: true },
  );
  const row = await conn.db
    .insertInto("webhooks.subscriptions")
    .values({
      id,
      tenant,
      name: input.name ?? null,
      description: input.description ?? null,
      url: input.url,
      method: input.method,
      auth: input.auth,
      headers: input.headers,
      secret_headers: secretHeaderNames(input.secret_headers),
      events,
      filter: input.filter ?? null,
      signature_scheme: input.signature.scheme,
      signature_header: input.signature.header ?? null,
      secret,
      retry: input.retry,
      timeout_ms: input.timeout_ms,
      max_in_flight: input.max_in_flight,
      rate_limit_per_s: input.rate_limit_per_s ?? null,
      disable_after_s: input.disable_after_s ?? null,
      breaker_threshold: input.breaker_threshold ?? null,
      big_numbers: input.big_numbers,
      payload: input.payload,
      iso_timestamp_header: input.iso_timestamp_header,
      is_active: input.is_active,
      disabled_at: input.is_active ? null : new Date(),
      disabled_reason: input.is_active ? null : "created disabled",
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  // A new webhook has no endpoint_health row yet: its circuit is closed.
  const health = {
    h_circuit: null,
    h_consecutive_failures: null,
    h_failing_since: null,
    h_last_success_at: null,
    h_last_failure_at: null,
    h_next_probe_at: null,
  };
  return { webhook: toWebhookView({ ...row, ...health }), secret, preview };
}

export interface WebhookListQuery {
  is_active?: boolean | undefined;
  /** Only webhooks that would receive this event type. */
  event?: string | undefined;
  /** Only webhooks whose name or URL contains this text (any case). */
  search?: string | undefined;
  /** Only webhooks whose endpoint is failing: circuit not closed, or failures since its last success. */
  failing?: boolean | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Oldest first, `limit` per page. */
export async function listWebhooks(
  conn: Connection,
  scope: Scope,
  q: WebhookListQuery,
): Promise<{ items: WebhookView[]; next_cursor: string | null }> {
  const after = q.cursor === undefined ? null : decodeCursor(q.cursor);
  const { event, is_active, search, failing } = q;
  const rows = await visibleWebhooks(conn.db, scope)
    .select(cursorTs("s").as("cursor_ts"))
    .$call((qb) => (is_active === undefined ? qb : qb.where("s.is_active", "=", is_active)))
    // The event-pattern match (exact, prefix.*, *) over the events array, as fanout matches.
    .$if(event !== undefined, (qb) =>
      qb.where(sql<boolean>`exists (
        select 1 from unnest(s.events) p
         where p = '*' or p = ${event}
            or (right(p, 2) = '.*' and length(${event}) > length(p) - 1
                and left(${event}, length(p) - 1) = left(p, -1)))`),
    )
    .$if(search !== undefined, (qb) =>
      qb.where((eb) => {
        const like = `%${(search ?? "").replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        return eb.or([eb("s.name", "ilike", like), eb("s.url", "ilike", like)]);
      }),
    )
    .$if(failing === true, (qb) => qb.where((eb) => eb.or([eb("h.circuit", "<>", "closed"), eb("h.consecutive_failures", ">", 0)])))
    .$call((qb) => (after === null ? qb : qb.where(pastCursor("s", ">", after))))
    .orderBy("s.created_at")
    .orderBy("s.id")
    .limit(q.limit + 1)
    .execute();
  const { page, next_cursor } = paginate(rows, q.limit);
  return { items: page.map(toWebhookView), next_cursor };
}

export async function getWebhook(conn: Connection, scope: Scope, id: string): Promise<WebhookView> {
  return toWebhookView(await findRow(conn.db, scope, id));
}

function invalid(path: string, message: string): DomainError {
  return new DomainError("invalid_input", `${path}: ${message}`, [{ path, message }]);
}

/** The columns a patch sets; absent fields are undefined, which kysely leaves out. */
function patchColumns(patch: WebhookPatch, tenant: string | null | undefined): SubscriptionSet {
  const newSecret = patch.secret !== undefined;
  return {
    name: patch.name,
    description: patch.description,
    url: patch.url,
    method: patch.method,
    auth: patch.auth,
    headers: patch.headers,
    secret_headers: patch.secret_headers && secretHeaderNames(patch.secret_headers),
    events: patch.events && [...new Set(patch.events)],
    filter: patch.filter,
    signature_scheme: patch.signature?.scheme,
    signature_header: patch.signature && (patch.signature.header ?? null),
    secret: patch.secret,
    // A secret set by hand replaces the old one at once; rotate-secret is the way with a grace period.
    previous_secret: newSecret ? null : undefined,
    previous_secret_expires_at: newSecret ? null : undefined,
    retry: patch.retry,
    timeout_ms: patch.timeout_ms,
    max_in_flight: patch.max_in_flight,
    rate_limit_per_s: patch.rate_limit_per_s,
    disable_after_s: patch.disable_after_s,
    breaker_threshold: patch.breaker_threshold,
    big_numbers: patch.big_numbers,
    payload: patch.payload,
    iso_timestamp_header: patch.iso_timestamp_header,
    tenant,
    updated_at: sql`now()`,
  };
}

/** Applies the fields present in the patch; absent fields keep their values. */
export async function updateWebhook(
  conn: Connection,
  scope: Scope,
  id: string,
  patch: WebhookPatch,
  opts: WriteOptions,
): Promise<WebhookView & { preview?: PreviewItem[] }> {
  if (patch.url !== undefined) checkUrl(patch.url, opts);
  if (patch.payload !== undefined) checkPayload(patch.payload);
  const tenant = patch.tenant === undefined ? undefined : tenantFor(scope, patch.tenant);
  // postgres.js transaction: resetHealth and failParkedDeliveries queue jobs through dispatch/jobs.ts in it.
  return conn.sql.begin(async (tx) => {
    const current = await findRow(tx, scope, id, true);
    const scheme = patch.signature?.scheme ?? current.signature_scheme;
    if (scheme === "standard") {
      if (patch.secret !== undefined && !isStandardSecret(patch.secret)) throw invalid("secret", STANDARD_SECRET_MESSAGE);
      if (patch.secret === undefined && current.signature_scheme !== "standard" && !isStandardSecret(current.secret)) {
        throw invalid("secret", `switching to the standard scheme needs a new secret: ${STANDARD_SECRET_MESSAGE}`);
      }
    }
    if (scheme === "ed25519" && patch.secret !== undefined) {
      const problem = secretProblem("ed25519", patch.secret);
      if (problem !== null) throw invalid("secret", problem);
    }
    let set = patchColumns(patch, tenant);
    if (scheme === "ed25519" && patch.secret === undefined && current.signature_scheme !== "ed25519") {
      // Receivers need only the public key (in the view), so switching to ed25519 makes a key pair.
      set = { ...set, secret: generateSecretFor("ed25519"), previous_secret: null, previous_secret_expires_at: null };
    }
    if (patch.is_active !== undefined && patch.is_active !== current.is_active) {
      set = { ...set, ...activeColumns(patch.is_active) };
      await onActiveChange(tx, current.id, patch.is_active);
    } else if (current.is_active && (patch.is_active ?? true)) {
      if (isNewEndpoint(current, patch)) await resetHealth(tx, current.id, "forget");
      else if (patch.breaker_threshold === 0 && current.breaker_threshold !== 0) await resetHealth(tx, current.id, "close");
    }
    const view = toWebhookView(await updateRow(tx, current.id, set));
    if (patch.payload === undefined) return view;
    // A new payload is shown rendered; one a guard cuts off is refused (the transaction rolls back).
    const preview = await renderPreview(conn, { ...view, payload: patch.payload }, { refuseCutOff: true });
    return { ...view, preview };
  });
}

/** The webhook's payload rendered for an event (default: its recent events, or samples), sending nothing. */
export async function previewWebhook(conn: Connection, scope: Scope, id: string, opts: { event_id?: string | undefined } = {}): Promise<PreviewItem[]> {
  const row = await findRow(conn.db, scope, id);
  const view = toWebhookView(row);
  return renderPreview(conn, view, { eventId: opts.event_id });
}

const USER_DISABLED_REASON = "disabled by a user";

function activeColumns(active: boolean): SubscriptionSet {
  return active
    ? { is_active: true, disabled_reason: null, disabled_at: null }
    : { is_active: false, disabled_reason: USER_DISABLED_REASON, disabled_at: sql`now()` };
}

/**
 * True when the patch points the webhook at a different endpoint as far as health goes: another
 * URL, credentials, static headers, signature or secret. The old endpoint's failures say nothing
 * about the new one.
 */
function isNewEndpoint(current: WebhookRow, patch: WebhookPatch): boolean {
  const differs = <T>(next: T | undefined, now: T) => next !== undefined && !isDeepStrictEqual(next, now);
  return (
    differs(patch.url, current.url) ||
    differs(patch.auth, current.auth) ||
    differs(patch.headers, current.headers ?? {}) ||
    differs(patch.signature?.scheme, current.signature_scheme) ||
    differs(patch.signature === undefined ? undefined : (patch.signature.header ?? null), current.signature_header) ||
    differs(patch.secret, current.secret)
  );
}

/**
 * Closes the webhook's circuit and gives the deliveries parked behind it a job now, in the
 * caller's transaction. "forget" also drops the run of failures and the auto-disable clock (a
 * new endpoint, or a user enabling the webhook); "close" keeps them (the breaker turned off).
 */
async function resetHealth(tx: Queryable, webhookId: string, how: "forget" | "close"): Promise<void> {
  const reset =
    how === "forget"
      ? build.deleteFrom("webhooks.endpoint_health").where("subscription_id", "=", webhookId)
      : build
          .updateTable("webhooks.endpoint_health")
          .set({
            circuit: "closed",
            opened_at: null,
            next_probe_at: null,
            probe_interval_ms: null,
            probe_delivery_id: null,
            updated_at: sql`now()`,
          })
          .where("subscription_id", "=", webhookId);
  await affected(tx, reset);
  const unparked: QueuedDelivery[] = await all(
    tx,
    build
      .updateTable("webhooks.deliveries")
      .set({ parked_at: null, next_attempt_at: sql`now()`, updated_at: sql`now()` })
      .where("subscription_id", "=", webhookId)
      .where("parked_at", "is not", null)
      .where("status", "in", ["pending", "retrying"])
      .returning(["id", "subscription_id"]),
  );
  await enqueueDeliveries(tx, unparked);
}

/**
 * What goes with a user's change of is_active, in its transaction. Enabling resets the endpoint's
 * health: a closed circuit, no run of failures, a fresh auto-disable clock. Disabling fails the
 * deliveries parked behind an open circuit, which no job would ever finish otherwise.
 */
async function onActiveChange(tx: Queryable, webhookId: string, active: boolean): Promise<void> {
  if (!active) {
    await failParkedDeliveries(tx, webhookId, USER_DISABLED_REASON);
    return;
  }
  // Disabling failed the parked ones, but one parked since (a job that raced the disable) would
  // now wait for a probe that no health row will schedule: resetHealth queues it instead.
  await resetHealth(tx, webhookId, "forget");
}

/**
 * Fails a webhook's parked deliveries (waiting for its circuit to close, so without a job): once
 * the webhook is disabled nothing else would finish them. Failed, they stay replayable. Call it in
 * the transaction that disables the webhook, whoever does (a user; the dispatcher on a 410 or
 * after disable_after_s), with the disabled_reason. Returns how many it failed.
 */
export async function failParkedDeliveries(tx: Queryable, webhookId: string, reason: string): Promise<number> {
  return failParked(tx, webhookId, reason);
}

/** Enabling clears disabled_reason and disabled_at and resets health; disabling records when and fails parked deliveries. */
export async function setWebhookActive(conn: Connection, scope: Scope, id: string, active: boolean): Promise<WebhookView> {
  // postgres.js transaction: onActiveChange queues jobs through dispatch/jobs.ts in it.
  return conn.sql.begin(async (tx) => {
    const current = await findRow(tx, scope, id, true);
    if (current.is_active === active) return toWebhookView(current);
    await onActiveChange(tx, current.id, active);
    return toWebhookView(await updateRow(tx, current.id, { ...activeColumns(active), updated_at: sql`now()` }));
  });
}

/** Soft delete: the row stays for its delivery history; deliveries still owed (parked ones too) are cancelled. */
export async function deleteWebhook(conn: Connection, scope: Scope, id: string): Promise<void> {
  await conn.db.transaction().execute(async (trx) => {
    const current = await findRow(trx, scope, id, true);
    await trx
      .updateTable("webhooks.subscriptions")
      .set({ deleted_at: sql`now()`, updated_at: sql`now()` })
      .where("id", "=", current.id)
      .execute();
    await trx
      .updateTable("webhooks.deliveries")
      .set({
        status: "cancelled",
        next_attempt_at: null,
        parked_at: null,
        finished_at: sql`now()`,
        updated_at: sql`now()`,
        last_error: sql`coalesce(last_error, 'webhook deleted')`,
      })
      .where("subscription_id", "=", current.id)
      .where("status", "in", ["pending", "retrying"])
      .execute();
  });
}

export async function getWebhookSecret(conn: Connection, scope: Scope, id: string): Promise<string> {
  return (await findRow(conn.db, scope, id)).secret;
}

/**
 * A new secret (ed25519: a new key pair). The old one keeps signing until the grace period ends
 * (or switch_at): with the standard and ed25519 schemes alongside the new one (the spec allows several signatures); with hex and
 * sha256, which carry one signature, alone, so the new secret takes over at that instant.
 */
export async function rotateSecret(
  conn: Connection,
  scope: Scope,
  id: string,
  opts: { grace_ms?: number; switch_at?: string } = {},
): Promise<RotatedSecret> {
  const input = parseInput(rotateSecretSchema, opts);
  let switchAt: Date | null = null;
  if (input.switch_at !== undefined) {
    switchAt = new Date(input.switch_at);
    const ahead = switchAt.getTime() - Date.now();
    if (!(ahead > 0 && ahead <= MAX_ROTATION_GRACE_MS)) throw invalid("switch_at", SWITCH_AT_MESSAGE);
  }
  const graceMs = input.grace_ms ?? DEFAULT_ROTATION_GRACE_MS;
  return conn.db.transaction().execute(async (trx) => {
    const current = await findRow(trx, scope, id, true);
    const secret = generateSecretFor(current.signature_scheme);
    // The secret signing right now is the one receivers hold; during a hex/sha256 switch-over
    // that is still the previous one, which keeps signing until the new switch.
    const inEffect = signingSecrets(
      current.signature_scheme,
      current.secret,
      { previousSecret: current.previous_secret, previousSecretExpiresAt: current.previous_secret_expires_at },
      new Date(),
    ).secret;
    const keepOld = switchAt !== null || graceMs > 0;
    const until = switchAt === null ? sql<Date>`now() + ${graceMs} * interval '1 millisecond'` : sql<Date>`${switchAt}::timestamptz`;
    const row = await trx
      .updateTable("webhooks.subscriptions")
      .set({
        previous_secret: keepOld ? inEffect : null,
        previous_secret_expires_at: keepOld ? until : null,
        secret,
        updated_at: sql`now()`,
      })
      .where("id", "=", current.id)
      .returning(["id", "secret", "previous_secret_expires_at"])
      .executeTakeFirst();
    if (!row) throw webhookNotFound(id);
    const receivers_see = rotationSummary(current.signature_scheme, row.previous_secret_expires_at) ?? SWITCHED_NOW;
    const public_key = current.signature_scheme === "ed25519" ? publicKeyOf(row.secret) : null;
    return { ...row, public_key, receivers_see };
  });
}
