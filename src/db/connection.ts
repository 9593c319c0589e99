// Our own connections: postgres.js underneath, kysely on top for typed queries.
import postgres from "postgres";
import { Kysely } from "kysely";
import { PostgresJSDialect } from "kysely-postgres-js";
import type { Database } from "./schema";

export type Sql = postgres.Sql;
/** A connection pool or a transaction: what a query function needs. */
export type Queryable = postgres.Sql | postgres.TransactionSql;
export type Db = Kysely<Database>;

export interface Connection {
  sql: Sql;
  db: Db;
  close(): Promise<void>;
}

/** Seconds before reconnecting after `retries` failed connects: 50 ms doubling up to 1 s, with jitter. */
export function reconnectDelaySeconds(retries: number): number {
  return Math.min(0.05 * 2 ** retries, 1) * (0.5 + Math.random() / 2);
}

export function connect(url: string, options: { max?: number } = {}): Connection {
  const sql = postgres(url, {
    max: options.max ?? 10,
    // postgres.js waits up to 20 s before reconnecting once connects have failed for a while
    // (its retry count is shared by the pool), so after an outage every query would wait that
    // long once the server is back. Our callers retry by themselves; try again within a second.
    backoff: reconnectDelaySeconds,
    onnotice: () => {},
    connection: { application_name: "pg-webhooks" },
  });
  const db = new Kysely<Database>({ dialect: new PostgresJSDialect({ postgres: sql }) });
  return {
    sql,
    db,
    async close() {
      await db.destroy();
      // kysely ends the pool only when it used it; end postgres.js directly too (idempotent).
      await sql.end({ timeout: 5 });
    },
  };
}
