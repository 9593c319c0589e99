// Measures the admin UI (npm run measure:admin): the first load's size gzipped (the HTML of
// /admin/webhooks plus its three assets) and how long each page takes to render with 100,000
// deliveries in the database (app.inject, so the network is left out). Reports; asserts nothing.
// Needs DATABASE_URL (a server where it may create and drop the database pgw_admin_measure).
import { gzipSync } from "node:zlib";
import postgres from "postgres";
import { buildApp } from "../src/api/app";
import { loadConfig } from "../src/config";
import { createCore } from "../src/core";
import { connect } from "../src/db/connection";
import { migrate } from "../src/db/migrate";
import { createLogger } from "../src/logger";
import { DEFAULT_RETRY_POLICY } from "../src/model/retry-policy";
import { createKey } from "../src/services/keys";

const DELIVERIES = Number(process.env.DELIVERIES ?? 100_000);
const WEBHOOKS = 20;
const ROUNDS = 3;
const PER_ROUND = 10;

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function main(): Promise<void> {
  const server = process.env.DATABASE_URL;
  if (!server) throw new Error("set DATABASE_URL to a Postgres server this script may create a database on");
  const name = "pgw_admin_measure";
  const admin = postgres(server, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.unsafe(`create database ${name}`);
  const url = withDatabase(server, name);
  const conn = connect(url, { max: 10 });
  try {
    await migrate(conn.sql, url);
    // Webhooks, then DELIVERIES deliveries of made-up events over the last 48 h, 1 attempt each.
    await conn.sql`
      insert into webhooks.subscriptions (name, url, events, secret, tenant, retry)
      select 'hook ' || i, 'https://hooks.example.com/' || i, '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', case when i % 2 = 0 then 'acme' end,
             ${JSON.stringify(DEFAULT_RETRY_POLICY)}::jsonb
        from generate_series(1, ${WEBHOOKS}) i`;
    await conn.sql`
      with e as (
        insert into webhooks.outbox (type, data, dispatched_at, occurred_at)
        select 'clients.' || (array['created','updated','deleted'])[1 + i % 3], jsonb_build_object('id', i), now(), now() - (i % 172800) * interval '1 second'
          from generate_series(1, ${DELIVERIES}) i
        returning id, event_id, type, occurred_at
      ), d as (
        insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, status, attempts, last_status_code, created_at, finished_at)
        select (select id from webhooks.subscriptions order by id offset (e.id % ${WEBHOOKS}) limit 1), e.id, e.event_id, e.type,
               case when e.id % 10 = 0 then 'failed' else 'succeeded' end, 1, case when e.id % 10 = 0 then 500 else 200 end,
               e.occurred_at, e.occurred_at
          from e
        returning id, created_at, last_status_code
      )
      insert into webhooks.attempts (delivery_id, attempt_number, started_at, url, method, request_headers, request_body, response_status, duration_ms)
      select id, 1, created_at, 'https://hooks.example.com/', 'POST', '{}', '{}', last_status_code, 20 from d`;
    // As autovacuum would after a load this size: statistics, and the visibility map index-only scans use.
    await conn.sql`vacuum analyze`;

    const config = loadConfig({ LOG_LEVEL: "silent" });
    const core = createCore(config, { database: { url, connection: conn }, logger: createLogger("silent", false) });
    const { ctx } = core.sending();
    const app = buildApp({ conn: core.conn, ctx, config });
    await app.ready();
    const key = (await createKey(conn, { name: "measure" })).key;
    const signIn = await app.inject({
      method: "POST",
      url: "/admin/signin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: new URLSearchParams({ key }).toString(),
    });
    const cookie = String(signIn.headers["set-cookie"]).split(";")[0] ?? "";
    const get = (u: string, headers: Record<string, string> = {}) => app.inject({ method: "GET", url: u, headers: { cookie, ...headers } });

    const page = await get("/admin/webhooks");
    const assets = [...page.body.matchAll(/(?:src|href)="(\/admin\/assets\/[^"]+)"/g)].map((m) => m[1] ?? "");
    let total = gzipSync(page.body).length;
    const sizes = [`/admin/webhooks HTML ${gzipSync(page.body).length} B`];
    for (const a of assets) {
      const r = await get(a, { "accept-encoding": "gzip" });
      total += r.rawPayload.length;
      sizes.push(`${a} ${r.rawPayload.length} B`);
    }
    process.stdout.write(`first load, gzip: ${(total / 1024).toFixed(1)} KB (${sizes.join("; ")})\n`);

    const [one] = await conn.sql<{ d: string; w: string }[]>`select id as d, subscription_id as w from webhooks.deliveries where status = 'failed' limit 1`;
    if (!one) throw new Error("no delivery");
    const pages = [
      "/admin",
      "/admin/webhooks",
      `/admin/webhooks/${one.w}`,
      `/admin/webhooks/${one.w}/edit`,
      "/admin/events",
      "/admin/deliveries",
      "/admin/deliveries?status=failed&since=24h",
      `/admin/deliveries?webhook=${one.w}&response=5xx`,
      `/admin/deliveries/${one.d}`,
      "/admin/replay?status=failed&since=1h",
    ];
    const times = new Map<string, number[]>(pages.map((p) => [p, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Pages alternate within a round, so a noisy moment spreads over all of them.
      for (const p of pages) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < PER_ROUND; i++) {
          const r = await get(p);
          if (r.statusCode !== 200) throw new Error(`${p} answered ${r.statusCode}`);
        }
        times.get(p)?.push(Number(process.hrtime.bigint() - t0) / 1e6 / PER_ROUND);
      }
    }
    process.stdout.write(`render time with ${DELIVERIES} deliveries (ms per request, mean of ${PER_ROUND}, ${ROUNDS} rounds: min-max):\n`);
    for (const [p, t] of times) process.stdout.write(`  ${p.padEnd(64)} ${Math.min(...t).toFixed(1)}-${Math.max(...t).toFixed(1)}\n`);
    await core.close();
  } finally {
    await conn.close();
    if (process.env.KEEP === "1") {
      await admin.end();
      return;
    }
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
