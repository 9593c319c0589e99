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

export function connect(url: string, options: { max?: number } = {}): Connection {
  const sql = postgres(url, {
    max: options.max ?? 10,
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
