// The HTTP API on a fresh database, driven with app.inject(): an admin key, real sending
// (private targets allowed, so test receivers on 127.0.0.1 work) and small request helpers.
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { buildApp } from "../../src/api/app";
import type { Config } from "../../src/config";
import { createCore } from "../../src/core";
import type { Sender } from "../../src/delivery/client";
import { createLogger } from "../../src/logger";
import { createKey } from "../../src/services/keys";
import { createTestDatabase, type TestDatabase } from "./db";
import { testConfig } from "./pipeline";

export interface Api {
  db: TestDatabase;
  app: FastifyInstance;
  config: Config;
  sender: Sender;
  adminKey: string;
  /** A request with the admin key unless `key` says otherwise (null: no Authorization header). */
  call(method: HttpMethod, url: string, opts?: CallOptions): Promise<LightMyRequestResponse>;
  /** A key for a tenant (null: admin). */
  key(tenant: string | null): Promise<string>;
  close(): Promise<void>;
}

/** The verbs a test calls the API with (not a webhook's method: that is model/enums' HttpMethod). */
export type HttpMethod = "GET" | "POST" | "PATCH" | "DELETE" | "PUT";

export interface CallOptions {
  key?: string | null;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (with content-type application/json unless headers say otherwise). */
  raw?: string;
  headers?: Record<string, string>;
}

/** Builds an app over `db` (a fresh database when absent). */
export async function startApi(env: Record<string, string> = {}, db?: TestDatabase): Promise<Api> {
  const database = db ?? (await createTestDatabase());
  const config = testConfig(env);
  // The test keeps the database's connection: the core uses it and leaves it open.
  const core = createCore(config, { database: { url: database.url, connection: database }, logger: createLogger("silent", false) });
  const { sender, ctx } = core.sending();
  const app = buildApp({ conn: core.conn, ctx, config });
  core.defer("the API", () => app.close());
  await app.ready();
  const adminKey = (await createKey(database, { name: "test admin" })).key;

  const api: Api = {
    db: database,
    app,
    config,
    sender,
    adminKey,
    call(method, url, opts = {}) {
      const key = opts.key === undefined ? adminKey : opts.key;
      const headers: Record<string, string> = { ...(key === null ? {} : { authorization: `Bearer ${key}` }) };
      let payload: string | undefined;
      if (opts.raw !== undefined || opts.body !== undefined) {
        headers["content-type"] = "application/json";
        payload = opts.raw ?? JSON.stringify(opts.body);
      }
      return app.inject({ method, url, headers: { ...headers, ...opts.headers }, ...(payload === undefined ? {} : { payload }) });
    },
    async key(tenant) {
      return (await createKey(database, { tenant, name: `test ${tenant ?? "admin"}` })).key;
    },
    async close() {
      await core.close();
      if (!db) await database.close();
    },
  };
  return api;
}

/** Counts of every table a failed request must leave alone. */
export async function rowCounts(db: TestDatabase): Promise<Record<string, number>> {
  const [row] = await db.sql<Record<string, number>[]>`
    select (select count(*)::int from webhooks.subscriptions) as subscriptions,
           (select count(*)::int from webhooks.outbox) as outbox,
           (select count(*)::int from webhooks.deliveries) as deliveries,
           (select count(*)::int from webhooks.attempts) as attempts,
           (select count(*)::int from graphile_worker._private_jobs) as jobs`;
  if (!row) throw new Error("no counts");
  return row;
}

/** A minimal valid create body. */
export function webhookBody(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { url, events: ["*"], ...extra };
}

/** A failed delivery of a made-up, already dispatched event to `webhookId`; returns its id. */
export async function insertFailedDelivery(db: TestDatabase, webhookId: string, type: string, tenant: string | null = null): Promise<string> {
  const [d] = await db.sql<{ id: string }[]>`
    with e as (insert into webhooks.outbox (type, tenant, data, dispatched_at) values (${type}, ${tenant}, '{}', now()) returning id, event_id)
    insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, tenant, status)
    select ${webhookId}, id, event_id, ${type}, ${tenant}, 'failed' from e returning id`;
  if (!d) throw new Error("no delivery inserted");
  return d.id;
}
