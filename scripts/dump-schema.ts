// Regenerates sql/schema.sql: the webhooks schema after every migration, on a scratch database.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { loadConfig } from "../src/config";
import { createCore } from "../src/core";
import { describeSchema } from "../src/db/describe";
import { migrate } from "../src/db/migrate";

async function main(): Promise<void> {
  const server = process.env.DATABASE_URL;
  if (!server) throw new Error("set DATABASE_URL to a server where a scratch database may be created");
  const name = `pgw_schema_dump_${process.pid}`;
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const u = new URL(server);
  u.pathname = `/${name}`;
  // The scratch database is dropped when the core closes, after its pool.
  const dropScratch = async () => {
    await admin.unsafe(`drop database ${name} with (force)`);
    await admin.end();
  };
  const core = createCore(loadConfig({}), { database: { url: u.toString(), stop: dropScratch }, pool: 1 });
  try {
    await migrate(core.conn.sql, u.toString());
    writeFileSync(join(__dirname, "..", "sql", "schema.sql"), await describeSchema(core.conn.sql));
  } finally {
    await core.close();
  }
}
main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
