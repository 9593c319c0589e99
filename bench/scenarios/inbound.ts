// Inbound receiving: requests/s and p99 for POST /in/<slug> (api_key scheme, each request
// verified, stored and committed before its 200) on the real `pg-webhooks start --no-dispatcher`,
// against a bare Fastify route answering 200 on the same machine, in the same run, with the same
// clients (undici, CONCURRENCY in flight) and bodies; and against the database's own ceiling
// (the same clients committing one plain insert each).
import { spawn, type ChildProcess } from "node:child_process";
import postgres from "postgres";
import { join } from "node:path";
import { Agent, request } from "undici";
import { ROOT, assert, dispatcherEnv, now, pct, r2, sleep, type Bench } from "../harness";

const CONCURRENCY = 16;
const KEY = "bench-inbound-key-0123456789abcdef";

// A bare Fastify app: one route that reads the body as bytes and answers 200 with an id.
const BARE = `
const fastify = require("fastify")({ logger: false, bodyLimit: 1048576 });
fastify.removeAllContentTypeParsers();
fastify.addContentTypeParser("*", { parseAs: "buffer" }, (_r, body, done) => done(null, body));
let n = 0;
fastify.post("/in/:slug", async () => ({ id: String(++n), duplicate: false }));
fastify.listen({ host: "127.0.0.1", port: 0 }).then((url) => console.log("LISTENING " + url));
`;

function startChild(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m?.[1]) resolve({ child, url: m[1] });
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${out.slice(-2000)}`)));
    setTimeout(() => reject(new Error(`${args.join(" ")} did not start within 20 s: ${out.slice(-2000)}`)), 20000).unref();
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
  await exited;
  clearTimeout(timer);
}

/** CONCURRENCY clients posting for `seconds`: requests/s and latency percentiles (ms). */
async function load(url: string, seconds: number, headers: Record<string, string>) {
  const agent = new Agent({ connections: CONCURRENCY });
  const latencies: number[] = [];
  let seq = 0;
  let errors = 0;
  const t0 = now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (now() < end) {
        const i = seq++;
        const body = `{"event":"contact.updated","contact":{"id":${i},"email":"c${i}@example.com","amount":"12.50"}}`;
        const s = now();
        const res = await request(url, { method: "POST", body, headers: { ...headers, "x-request-id": `r-${i}` }, dispatcher: agent });
        await res.body.dump();
        if (res.statusCode === 200) latencies.push(now() - s);
        else errors++;
      }
    }),
  );
  const elapsed = (now() - t0) / 1000;
  await agent.close();
  latencies.sort((a, b) => a - b);
  return { per_s: Math.round(latencies.length / elapsed), p50_ms: r2(pct(latencies, 50)), p99_ms: r2(pct(latencies, 99)), requests: latencies.length, errors };
}

/**
 * The database's own ceiling for this work: the same clients each committing one insert of the
 * body into a table shaped like inbound_events (without its trigger), straight from postgres.js.
 */
async function insertCeiling(url: string, seconds: number): Promise<number> {
  const sql = postgres(url, { max: CONCURRENCY, onnotice: () => {} });
  try {
    await sql`drop table if exists bench_inbound_ceiling`;
    await sql`create table bench_inbound_ceiling (id bigint generated always as identity primary key, headers jsonb, body bytea, payload jsonb, k text unique)`;
    let n = 0;
    let seq = 0;
    const end = now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (now() < end) {
          const i = seq++;
          const body = `{"event":"contact.updated","contact":{"id":${i},"email":"c${i}@example.com","amount":"12.50"}}`;
          await sql`insert into bench_inbound_ceiling (headers, body, payload, k)
                    values ('{"x-tenant-id":"acme"}', ${Buffer.from(body)}, ${body}::text::jsonb, ${`r-${i}`})`;
          n++;
        }
      }),
    );
    await sql`drop table bench_inbound_ceiling`;
    return Math.round(n / seconds);
  } finally {
    await sql.end();
  }
}

export async function inbound(b: Bench) {
  const seconds = b.smoke ? 1 : 10;
  const { sql } = b;
  await sql`delete from webhooks.inbound_events`;
  await sql`delete from webhooks.inbound_sources where slug = 'bench'`;
  await sql`insert into webhooks.inbound_sources (slug, verify, secrets, allowed_tenants, dedupe)
            values ('bench', 'api_key', array[${KEY}], array['acme'], 'header:x-request-id')`;
  const headers = { "content-type": "application/json", "x-api-key": KEY, "x-tenant-id": "acme" };

  const server = await startChild(
    [join(ROOT, "bin", "pg-webhooks.js"), "start", "--no-dispatcher", "--no-admin", "--no-migrate"],
    { ...dispatcherEnv(), DATABASE_URL: b.url, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" },
    /"url":"(http:\/\/127\.0\.0\.1:\d+)"/,
  );
  let ours;
  try {
    await load(`${server.url}/in/bench`, b.smoke ? 0.3 : 2, headers); // warm-up
    await sql`delete from webhooks.inbound_events`;
    ours = await load(`${server.url}/in/bench/contact.updated`, seconds, headers);
  } finally {
    await stop(server.child);
  }
  const [stored] = await sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_events`;
  assert(ours.errors === 0, `inbound: ${ours.errors} requests were not answered 200`);
  assert(stored?.n === ours.requests, `inbound: ${ours.requests} answered 200 but ${stored?.n} rows stored`);

  const bare = await startChild(["-e", BARE], { ...process.env }, /LISTENING (http:\/\/127\.0\.0\.1:\d+)/);
  let raw;
  try {
    await load(`${bare.url}/in/bench`, b.smoke ? 0.3 : 2, headers);
    raw = await load(`${bare.url}/in/bench`, seconds, headers);
  } finally {
    await stop(bare.child);
  }
  const ceiling = await insertCeiling(b.url, seconds);
  await sleep(10);
  return {
    inbound_per_s: ours.per_s,
    inbound_p99_ms: ours.p99_ms,
    inbound_bare_per_s: raw.per_s,
    inbound_bare_p99_ms: raw.p99_ms,
    inbound_ratio: r2(ours.per_s / raw.per_s),
    inbound_insert_ceiling_per_s: ceiling,
    inbound_insert_ratio: r2(ours.per_s / ceiling),
    inbound: { seconds, concurrency: CONCURRENCY, ours, bare: raw },
  };
}
