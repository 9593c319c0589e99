// Kysely queries for the service layer, and where they run. A command runs on conn.db (a Kysely
// pool or transaction) unless it must share a transaction with a postgres.js function (the job
// queueing in dispatch/jobs.ts): a Kysely transaction cannot hold a postgres.js query, so such
// a command opens a postgres.js transaction and runs its typed queries there, compiled.
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type Compilable,
  type SelectExpression,
} from "kysely";
import type { Queryable } from "../db/connection";
import type { Database } from "../db/schema";

/** Builds queries and never runs one (it has no connection): for queries that run on `On`. */
export const build = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/** Where a query runs: Kysely (a pool or a transaction), or a postgres.js transaction. */
export type On = Kysely<Database> | Queryable;

/** Every row of the query. On postgres.js it runs as kysely-postgres-js runs it: unsafe() with its parameters. */
export async function all<R>(on: On, query: Compilable<R>): Promise<R[]> {
  const compiled = query.compile();
  if (on instanceof Kysely) return [...(await on.executeQuery(compiled)).rows];
  const rows = await on.unsafe(compiled.sql, [...compiled.parameters] as Parameters<Queryable["unsafe"]>[1]);
  return [...rows] as R[];
}

/** The first row of the query, if any. */
export async function first<R>(on: On, query: Compilable<R>): Promise<R | undefined> {
  return (await all(on, query))[0];
}

/** Rows the query changed (an update or delete without `returning`). */
export async function affected(on: On, query: Compilable<unknown>): Promise<number> {
  const compiled = query.compile();
  if (on instanceof Kysely) return Number((await on.executeQuery(compiled)).numAffectedRows ?? 0n);
  return (await on.unsafe(compiled.sql, [...compiled.parameters] as Parameters<Queryable["unsafe"]>[1])).count;
}

/** Selected alongside `s` (a subscriptions row) from endpoint_health `h`: what a WebhookRow adds. */
export const HEALTH_COLUMNS = [
  "h.circuit as h_circuit",
  "h.consecutive_failures as h_consecutive_failures",
  "h.failing_since as h_failing_since",
  "h.last_success_at as h_last_success_at",
  "h.last_failure_at as h_last_failure_at",
  "h.next_probe_at as h_next_probe_at",
] as const satisfies readonly SelectExpression<Database & { h: Database["webhooks.endpoint_health"] }, "h">[];
