// Backfills from the real binary: --dry-run, --where errors naming the flag, following one to
// the end, and a dispatcher killed (-9) in the middle: the next one resumes after the last key
// sent, so every row's event exists exactly once. Also the ed25519 public key in the CLI.
import { setTimeout as sleep } from "node:timers/promises";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { runCli, runJson, spawnCli, type RunningCli } from "./helpers/cli";

const ROWS = 2000;
let t: TestDatabase;
let rx: Receiver;
let env: Record<string, string>;
const dispatchers: RunningCli[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver({ status: 200 });
  env = {
    DATABASE_URL: t.url,
    WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
    WEBHOOKS_POLL_INTERVAL_MS: "200",
    WEBHOOKS_DISPATCHER_TIMEOUT_MS: "2000",
  };
  await t.sql`create table public.clients (id int primary key, name text, big bigint, at timestamptz, note text)`;
  await t.sql`
    insert into public.clients
    select i, 'client ' || i, 9223372036854775807 - i,
           case when i % 2 = 0 then 'infinity'::timestamptz else '294276-12-31 23:59:59+00'::timestamptz end,
           ${"not a surrogate: \\ud800 \\u0000 "} || i
      from generate_series(1, ${ROWS}) i`;
  await t.sql`select webhooks.track_table('public.clients')`;
});
afterAll(async () => {
  for (const d of dispatchers) await d.stop("SIGKILL").catch(() => {});
  await rx?.close();
  await t?.close();
});

function startDispatcher(): RunningCli {
  const d = spawnCli(["start", "--no-api"], { env });
  dispatchers.push(d);
  return d;
}

async function until<T>(what: string, fn: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last saw ${JSON.stringify(v)}`);
    await sleep(100);
  }
}

const progress = async (id: string) =>
  (await t.sql<{ state: string; rows_sent: number }[]>`select state, rows_sent::int from webhooks.backfills where id = ${id}`)[0]!;

it("counts with --dry-run and names --where in its errors (exit 2)", async () => {
  const { id } = await runJson<{ id: string }>(["webhooks", "create", "--url", `${rx.url}/a`, "--events", "clients.*"], { env });
  expect(await runJson(["backfill", id, "--table", "public.clients", "--dry-run"], { env })).toEqual({
    dry_run: true,
    table: "public.clients",
    event_type: "clients.backfill",
    rows: ROWS,
  });
  const bad = await runCli(["backfill", id, "--table", "public.clients", "--where", "id = 1; drop table public.clients"], { env });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--where: expected one condition: ; is not accepted/);
  const nope = await runCli(["backfill", id, "--table", "public.clients", "--where", "idd = 1"], { env });
  expect(nope.code).toBe(2);
  expect(nope.stderr).toMatch(/--where: Postgres cannot run it over public\.clients: column "idd" does not exist/);
  expect((await t.sql`select count(*)::int as n from webhooks.backfills`)[0]).toEqual({ n: 0 });
});

it("resumes after the dispatcher is killed mid-backfill: every row's event exactly once, and hostile values intact", async () => {
  const { id } = await runJson<{ id: string }>(["webhooks", "create", "--url", `${rx.url}/crash`, "--events", "nothing.matches"], { env });
  const first = startDispatcher();
  await first.waitForOutput("pg-webhooks running: dispatcher");
  const b = await runJson<{ id: string; state: string }>(["backfill", id, "--table", "public.clients", "--rate", "800", "--no-wait"], { env });
  expect(b.state).toBe("running");
  await until("some rows sent", () => progress(b.id), (p) => p.rows_sent >= 300);
  await first.stop("SIGKILL");
  const atKill = await progress(b.id);
  expect(atKill.state).toBe("running");
  expect(atKill.rows_sent).toBeLessThan(ROWS);
  await sleep(500);
  expect((await progress(b.id)).rows_sent).toBe(atKill.rows_sent);

  const second = startDispatcher();
  await second.waitForOutput("pg-webhooks running: dispatcher");
  await until("the backfill to finish", () => progress(b.id), (p) => p.state === "done", 90_000);
  await until(
    "every delivery to succeed",
    async () => (await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries where subscription_id = ${id} and status = 'succeeded'`)[0]!.n,
    (n) => n >= ROWS,
  );
  const perRow = await t.sql<{ n: number; rows: number }[]>`
    select count(*)::int as n, count(distinct data->>'id')::int as rows from webhooks.outbox where target_subscription = ${id}`;
  expect(perRow[0]).toEqual({ n: ROWS, rows: ROWS });
  const requests = rx.requests.filter((r) => r.path === "/crash");
  const got = requests.map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> });
  // Deliveries are at least once: those the killed dispatcher held (in flight, or sent but not yet
  // recorded) go again, with the same webhook-id, so receivers deduplicate them.
  expect(new Set(got.map((g) => String(g.data.id))).size).toBe(ROWS);
  const idsPerRow = new Map<string, Set<string>>();
  requests.forEach((r, i) => {
    const row = String(got[i]!.data.id);
    idsPerRow.set(row, (idsPerRow.get(row) ?? new Set()).add(String(r.headers["webhook-id"])));
  });
  expect([...idsPerRow.values()].every((ids) => ids.size === 1)).toBe(true);
  expect(got.length - ROWS).toBeLessThanOrEqual(ROWS / 10);
  const row1 = got.find((g) => g.data.id === 1)!;
  const row2 = got.find((g) => g.data.id === 2)!;
  expect(row1).toMatchObject({ type: "clients.backfill", data: { big: "9223372036854775806", note: "not a surrogate: \\ud800 \\u0000 1" } });
  expect(row1.data.at).toBe("294276-12-31T23:59:59+00:00");
  expect(row2.data.at).toBe("infinity");
});

it("follows a backfill to the end and lists it", async () => {
  const { id } = await runJson<{ id: string }>(["webhooks", "create", "--url", `${rx.url}/follow`, "--events", "clients.*"], { env });
  if (dispatchers.every((d) => d.child.exitCode !== null || d.child.killed)) {
    const d = startDispatcher();
    await d.waitForOutput("pg-webhooks running: dispatcher");
  }
  const done = await runJson<{ id: string; state: string; rows_sent: number; rows_total: number }>(
    ["backfill", id, "--table", "public.clients", "--where", "id <= 50 and name <> 'x'"],
    { env, timeoutMs: 60_000 },
  );
  expect(done).toMatchObject({ state: "done", rows_sent: 50, rows_total: 50 });
  const list = await runJson<{ id: string }[]>(["backfills", "list", id], { env });
  expect(list.map((l) => l.id)).toEqual([done.id]);
  const shown = await runCli(["backfills", "show", done.id], { env });
  expect(shown.code).toBe(0);
  expect(shown.stdout).toMatch(/rows:\s+50 sent of 50/);
  const cancel = await runCli(["backfills", "cancel", done.id], { env });
  expect(cancel.code).toBe(1);
  expect(cancel.stderr).toMatch(/is done: it cannot be cancelled/);
});

it("prints an ed25519 webhook's public key and receiver snippet, never its private key", async () => {
  const created = await runCli(["webhooks", "create", "--url", `${rx.url}/ed`, "--events", "x.*", "--signature", "ed25519"], { env });
  expect(created.code).toBe(0);
  const key = /public key:\s+(whpk_\S+)/.exec(created.stdout)?.[1];
  expect(key).toMatch(/^whpk_/);
  expect(created.stdout).toContain(`const PUBLIC_KEY = "${key}"`);
  expect(created.stdout + created.stderr).not.toMatch(/whsk_/);
  const id = /^id:\s+(\S+)/m.exec(created.stdout)?.[1] ?? "";
  const shown = await runCli(["webhooks", "show", id], { env });
  expect(shown.stdout).toContain(key);
  expect(shown.stdout).not.toMatch(/whsk_/);
  const secret = await runCli(["webhooks", "show", id, "--show-secret"], { env });
  expect(secret.stdout).toMatch(/whsk_/);
});
