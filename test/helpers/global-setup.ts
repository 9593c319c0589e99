// Once per jest run: find a Postgres (DATABASE_URL, or an embedded one) and build a template
// database with every migration applied, so each test file can clone it cheaply.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { startEmbedded } from "../../src/db/embedded";
import { migrate } from "../../src/db/migrate";
import { connect } from "../../src/db/connection";

declare global {
  // eslint-disable-next-line no-var
  var __PGW_STOP__: (() => Promise<void>) | undefined;
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export default async function globalSetup(): Promise<void> {
  let serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    const dir = mkdtempSync(join(tmpdir(), "pgw-test-pg-"));
    chmodSync(dir, 0o755); // as root, the embedded server runs as the postgres user
    const embedded = await startEmbedded(dir);
    serverUrl = embedded.url;
    globalThis.__PGW_STOP__ = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const template = `pgw_tpl_${process.pid}_${Date.now()}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${template}`);
  await admin.end();
  const templateUrl = withDatabase(serverUrl, template);
  const conn = connect(templateUrl, { max: 1 });
  await migrate(conn.sql, templateUrl);
  await conn.close();
  // graphile-worker's migration pool can linger; a template must have no connections.
  const admin2 = postgres(serverUrl, { max: 1, onnotice: () => {} });
  await admin2`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${template}`;
  await admin2.end();
  process.env.PGW_TEST_SERVER_URL = serverUrl;
  process.env.PGW_TEST_TEMPLATE = template;
}
