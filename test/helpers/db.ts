// A fresh database per test file, cloned from the migrated template.
import postgres from "postgres";
import { randomBytes } from "node:crypto";
import { connect, type Connection, type Sql } from "../../src/db/connection";
import { withDatabase } from "./global-setup";

export interface TestDatabase extends Connection {
  url: string;
  name: string;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = process.env.PGW_TEST_SERVER_URL;
  const template = process.env.PGW_TEST_TEMPLATE;
  if (!serverUrl || !template) throw new Error("global setup did not run (PGW_TEST_SERVER_URL unset)");
  const name = `pgw_t_${template.slice(8)}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  // CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template; retry briefly.
  for (let i = 0; ; i++) {
    try {
      await admin.unsafe(`create database ${name} template ${template}`);
      break;
    } catch (e) {
      if (i > 5) throw e;
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${template}`;
    }
  }
  await admin.end();
  const url = withDatabase(serverUrl, name);
  const conn = connect(url, { max: 5 });
  return {
    ...conn,
    url,
    name,
    async close() {
      await conn.close();
      const a = postgres(serverUrl, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

/**
 * Empties the event, delivery and webhook tables between tests. A dispatcher still running
 * (or finishing its last recording) takes its locks in another order than TRUNCATE, so
 * Postgres may cancel the truncate as a deadlock; it is tried again.
 */
export async function emptyWebhookTables(sql: Sql): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await sql`truncate webhooks.deliveries, webhooks.attempts, webhooks.subscriptions, webhooks.outbox, webhooks.endpoint_health cascade`;
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== "40P01" || i >= 5) throw e;
    }
  }
}
