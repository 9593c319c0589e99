// The real binary: `pg-webhooks inbound …` commands, and a crash of `pg-webhooks start` between
// the insert and the answer: the sender sees no 200, and its retry leaves exactly one row.
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { runCli, runJson, spawnCli, type RunningCli } from "./helpers/cli";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.close();
});

const KEY = "crm-cli-key-0123456789abcdef";

describe("pg-webhooks inbound", () => {
  it("creates a source, prints its URL and never the secret; lists, shows, updates and deletes it", async () => {
    const env = { DATABASE_URL: db.url, PORT: "9123" };
    const created = await runCli(["inbound", "create", "--slug", "crm", "--verify", "api_key", "--secret", KEY, "--dedupe", "header:x-request-id"], { env });
    expect(created.code).toBe(0);
    expect(created.stdout).toContain("http://localhost:9123/in/crm");
    expect(created.stdout + created.stderr).not.toContain(KEY);
    const list = await runCli(["inbound", "list"], { env });
    expect(list.stdout).toMatch(/crm\s+api_key/);
    expect(list.stdout).not.toContain(KEY);
    const shown = await runJson<Record<string, unknown>>(["inbound", "show", "crm"], { env });
    expect(shown).toMatchObject({ slug: "crm", verify: "api_key", secrets_set: 1, dedupe_effective: "header:x-request-id" });
    expect(JSON.stringify(shown)).not.toContain(KEY);
    const updated = await runJson<Record<string, unknown>>(["inbound", "update", "crm", "--rate-limit", "50", "--relay", "inbound.crm"], { env });
    expect(updated).toMatchObject({ rate_limit_per_s: 50, relay_prefix: "inbound.crm" });
    const cleared = await runJson<Record<string, unknown>>(["inbound", "update", "crm", "--no-relay"], { env });
    expect(cleared).toMatchObject({ rate_limit_per_s: 50, relay_prefix: null });
    const generated = await runJson<Record<string, unknown>>(["inbound", "create", "--slug", "billing", "--verify", "standard"], { env });
    expect(String(generated.secret)).toMatch(/^whsec_/);
    const bad = await runCli(["inbound", "create", "--slug", "Bad Slug", "--verify", "none"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--slug/);
    expect((await runCli(["inbound", "create", "--slug", "x", "--verify", "nope"], { env })).code).toBe(2);
    expect((await runCli(["inbound", "delete", "billing"], { env })).code).toBe(0);
    expect((await runCli(["inbound", "show", "billing"], { env })).code).toBe(1);
  });

  it("lists, shows and replays events", async () => {
    const env = { DATABASE_URL: db.url };
    const [src] = await db.sql<{ id: string }[]>`select id from webhooks.inbound_sources where slug = 'crm'`;
    const [ev] = await db.sql<{ id: string }[]>`
      insert into webhooks.inbound_events (source_id, event_name, headers, body, status, last_error, processed_at)
      values (${src?.id ?? ""}, 'contact.updated', '{}', ${Buffer.from([0xff, 0x00])}, 'failed', 'boom', now()) returning id::text`;
    const list = await runCli(["inbound", "events", "list", "--source", "crm", "--status", "failed"], { env });
    expect(list.stdout).toMatch(/contact\.updated\s+-\s+failed/);
    const shown = await runJson<Record<string, unknown>>(["inbound", "events", "show", ev?.id ?? ""], { env });
    expect(shown).toMatchObject({ body: "/wA=", body_text: null, last_error: "boom" });
    const replay = await runJson<Record<string, unknown>>(["inbound", "events", "replay", "--source", "crm"], { env });
    expect(replay).toEqual({ matched: 1, pending: 1, relayed: 0, failed: 0 });
  });
});

describe("a crash between the insert and the answer", () => {
  let server: RunningCli | undefined;

  afterEach(async () => {
    await server?.stop("SIGKILL");
  });

  // crm stores with one autocommit statement; crm-relay inserts and relays in one transaction,
  // so the kill lands between its insert and its COMMIT.
  it.each([
    ["crm", "req-1"],
    ["crm-relay", "req-2"],
  ])("%s: sends no 200 before the commit, and the retry stores exactly one row", async (slug, requestId) => {
    if (slug === "crm-relay") {
      await db.sql`insert into webhooks.inbound_sources (slug, verify, secrets, dedupe, relay_prefix)
                   values ('crm-relay', 'api_key', array[${KEY}], 'header:x-request-id', 'inbound.crm')`;
    }
    // Holds every insert into inbound_events inside its statement until the test lets go.
    await db.sql.unsafe(`
      create function public.test_hold_inbound() returns trigger language plpgsql as $$
      begin perform pg_advisory_xact_lock(424242); return null; end $$;
      create trigger test_hold after insert on webhooks.inbound_events for each row execute function public.test_hold_inbound();`);
    const holder = await db.sql.reserve();
    await holder`select pg_advisory_lock(424242)`;

    server = spawnCli(["start", "--no-dispatcher", "--no-admin", "--no-migrate"], {
      env: { DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" },
    });
    await server.waitForOutput("API listening");
    const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(server.output().stdout + server.output().stderr);
    expect(m).not.toBeNull();
    const url = `${m?.[1] ?? ""}/in/${slug}/contact.created`;
    const headers = { "content-type": "application/json", "x-api-key": KEY, "x-request-id": requestId };
    const body = '{"contact":{"id":1}}';

    let answered: number | string = "pending";
    const first = fetch(url, { method: "POST", headers, body }).then(
      (r) => (answered = r.status),
      (e: unknown) => (answered = `failed: ${String(e)}`),
    );
    // The server's insert is waiting inside its statement: nothing committed, nothing answered.
    for (let i = 0; i < 200; i++) {
      const [w] = await db.sql<{ n: number }[]>`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
      if ((w?.n ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe("pending");

    await server.stop("SIGKILL");
    server = undefined;
    await first;
    expect(answered).toMatch(/^failed/);
    await holder`select pg_advisory_unlock(424242)`;
    holder.release();
    await db.sql.unsafe("drop trigger test_hold on webhooks.inbound_events; drop function public.test_hold_inbound()");

    // The sender retries against a new server: one row, whatever the killed statement left.
    server = spawnCli(["start", "--no-dispatcher", "--no-admin", "--no-migrate"], {
      env: { DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" },
    });
    await server.waitForOutput("API listening");
    const m2 = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(server.output().stdout + server.output().stderr);
    // Let the killed server's backend finish (or roll back) its statement first.
    for (let i = 0; i < 100; i++) {
      const [a] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where datname = current_database() and query like '%insert into webhooks.inbound_events%' and pid <> pg_backend_pid() and state = 'active'`;
      if ((a?.n ?? 0) === 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const retry = await fetch(`${m2?.[1] ?? ""}/in/${slug}/contact.created`, { method: "POST", headers, body });
    expect(retry.status).toBe(200);
    const first200 = (await retry.json()) as { duplicate: boolean };
    // The relaying source's transaction died before COMMIT: the retry is the first stored copy.
    if (slug === "crm-relay") expect(first200.duplicate).toBe(false);
    const again = await fetch(`${m2?.[1] ?? ""}/in/${slug}/contact.created`, { method: "POST", headers, body });
    expect(await again.json()).toMatchObject({ duplicate: true });
    const rows = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_events where dedupe_key = ${requestId}`;
    expect(rows[0]?.n).toBe(1);
    if (slug === "crm-relay") {
      // The killed transaction left neither its row nor its relayed event; the retry made one of each.
      const [o] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.outbox where type = 'inbound.crm.contact.created'`;
      expect(o?.n).toBe(1);
    }
  });
});
