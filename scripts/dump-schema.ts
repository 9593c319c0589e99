// Regenerates sql/schema.sql: the webhooks schema after every migration, on a scratch database.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { connect } from "../src/db/connection";
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
  const conn = connect(u.toString(), { max: 1 });
  try {
    await migrate(conn.sql, u.toString());
    writeFileSync(join(__dirname, "..", "sql", "schema.sql"), await describeSchema(conn.sql));
  } finally {
    await conn.close();
    await admin.unsafe(`drop database ${name} with (force)`);
    await admin.end();
  }
}
main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
