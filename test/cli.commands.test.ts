// The operator CLI, run as the real binary against a real database: every command's main
// path, and one usage error per command (exit 2, a message naming the flag or argument).
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { runCli, runJson, type CliResult } from "./helpers/cli";

let t: TestDatabase;
let rx: Receiver;
let env: Record<string, string>;

const cli = (args: string[], input?: string) => runCli(args, { env, ...(input !== undefined ? { input } : {}) });
const json = <T = Record<string, unknown>>(args: string[]) => runJson<T>(args, { env });

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver();
  env = { DATABASE_URL: t.url, WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" };
  await t.sql`create table public.clients (id serial primary key, account_id text, name text, password_hash text)`;
});
afterAll(async () => {
  await rx?.close();
  await t?.close();
});

const ID = "3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f";

describe("every command", () => {
  const commands = [
    ["migrate"], ["start"], ["track"], ["untrack"], ["tracked"], ["emit"],
    ["webhooks", "create"], ["webhooks", "list"], ["webhooks", "show"], ["webhooks", "update"], ["webhooks", "enable"],
    ["webhooks", "disable"], ["webhooks", "delete"], ["webhooks", "test"], ["webhooks", "rotate-secret"],
    ["deliveries", "list"], ["deliveries", "show"], ["replay"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"],
    ["prune"], ["status"],
    ["inbound", "create"], ["inbound", "list"], ["inbound", "show"], ["inbound", "update"], ["inbound", "delete"],
    ["inbound", "events", "list"], ["inbound", "events", "show"], ["inbound", "events", "replay"],
  ];

  it("prints help with an example, --json and --database-url, and exits 0", async () => {
    const results = await Promise.all(commands.map((c) => cli([...c, "--help"])));
    results.forEach((r, i) => {
      const name = commands[i]?.join(" ");
      expect({ name, code: r.code }).toEqual({ name, code: 0 });
      expect(r.stdout).toContain(`Usage: pg-webhooks ${name}`);
      expect(r.stdout).toMatch(/Examples?:\n {2}\$ pg-webhooks /);
      expect(r.stdout).toContain("--json");
      expect(r.stdout).toContain("--database-url");
    });
  });

  it("describes --secret as what update does, not what create does", async () => {
    const [create, update] = await Promise.all([cli(["webhooks", "create", "--help"]), cli(["webhooks", "update", "--help"])]);
    const secretLine = (help: string) => help.split("\n").find((l) => l.trimStart().startsWith("--secret <secret>")) ?? "";
    expect(secretLine(create.stdout)).toContain("default: a new whsec_");
    expect(secretLine(update.stdout)).not.toContain("default");
    // Commander wraps long descriptions; compare with the line breaks folded.
    const folded = update.stdout.replace(/\s+/g, " ");
    expect(folded).toContain("--secret <secret> replace the signing secret at once; the old one stops working now");
  });

  // [args, what the message must name]
  const usageErrors: [string[], RegExp][] = [
    [["migrate", "--database-url", "mysql://db/app"], /--database-url/],
    [["start", "--no-api", "--no-dispatcher"], /--no-api and --no-dispatcher/],
    [["track", "clients", "--operations", "insert,upsert"], /--operations.*upsert/],
    [["untrack"], /missing required argument 'table'/],
    [["tracked", "--verbose"], /unknown option '--verbose'/],
    [["emit", "invoice.paid", "{not json"], /argument 'json'/],
    [["webhooks", "create", "--events", "clients.*"], /--url/],
    [["webhooks", "list", "--limit", "0"], /--limit/],
    [["webhooks", "show", "not-an-id"], /argument 'id'/],
    [["webhooks", "update", ID, "--max-attempts", "50"], /--max-attempts/],
    [["webhooks", "create", "--url", "https://example.com/x", "--events", "a.b", "--max-in-flight", "0"], /--max-in-flight.*1 to 1000/],
    [["webhooks", "update", ID, "--rate-limit", "0"], /--rate-limit.*from 0\.001/],
    [["webhooks", "update", ID, "--rate-limit", "20000"], /--rate-limit.*to 10000/],
    [["webhooks", "update", ID, "--disable-after", "500ms"], /--disable-after.*whole seconds.*"500ms"/],
    [["webhooks", "update", ID, "--disable-after", "400d"], /--disable-after.*1s to 365d/],
    [["webhooks", "update", ID, "--disable-after", "soon"], /--disable-after.*5d, 12h, 90m, 3600s or 3600/],
    [["webhooks", "enable"], /missing required argument 'id'/],
    [["webhooks", "disable", "42"], /argument 'id'/],
    [["webhooks", "delete", "nope"], /argument 'id'/],
    [["webhooks", "test", ID, "--data", "{oops"], /--data/],
    [["webhooks", "rotate-secret", ID, "--grace", "soon"], /--grace/],
    [["webhooks", "rotate-secret", ID, "--at", "2024-02-30T00:00:00Z"], /--at: expected an ISO timestamp/],
    [["deliveries", "list", "--status", "done"], /--status.*done/],
    [["deliveries", "show", "x"], /argument 'id'/],
    [["replay", "--since", "yesterday"], /--since/],
    [["keys", "create", "--name"], /--name/],
    [["keys", "list", "extra"], /too many arguments/],
    [["keys", "revoke", "nope"], /argument 'id'/],
    [["prune"], /--older-than/],
    [["status", "--window", "1h"], /unknown option '--window'/],
    [["webhooks", "frobnicate"], /unknown command 'frobnicate'/],
  ];

  it("exits 2 on a usage error, naming the flag, with nothing on stdout", async () => {
    const results = await Promise.all(usageErrors.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      const [args, pattern] = usageErrors[i] as [string[], RegExp];
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
      expect({ args, stderr: r.stderr }).toEqual({ args, stderr: expect.stringMatching(pattern) });
    });
  });
});

describe("migrate", () => {
  it("reports migrations already applied, as JSON", async () => {
    const r = await json<{ applied: string[]; already_applied: string[] }>(["migrate"]);
    expect(r.applied).toEqual([]);
    expect(r.already_applied).toContain("0001_tables.sql");
  });

  it("exits 1 with a hint when the database cannot be reached", async () => {
    const r = await cli(["tracked", "--database-url", "postgres://postgres@127.0.0.1:1/none"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/could not connect to the database/);
  });
});

describe("track, tracked, untrack, emit", () => {
  it("tracks a table with options, lists it, and untracks it", async () => {
    const tracked = await json([
      "track", "public.clients", "--tenant-column", "account_id", "--exclude-columns", "password_hash", "--operations", "insert,update",
    ]);
    expect(tracked).toMatchObject({
      table: "clients",
      event_prefix: "clients",
      operations: expect.arrayContaining(["insert", "update"]),
      tenant_column: "account_id",
      excluded_columns: ["password_hash"],
    });
    const list = await json<Record<string, unknown>[]>(["tracked"]);
    expect(list).toHaveLength(1);
    const human = await cli(["tracked"]);
    expect(human.stdout).toMatch(/TABLE\s+PREFIX\s+OPERATIONS/);
    expect(human.stdout).toMatch(/clients\s+clients\s+insert,update\s+account_id\s+password_hash/);

    await t.sql`insert into clients (account_id, name, password_hash) values ('acme', 'Ada', 'h')`;
    const [event] = await t.sql`select type, tenant, data from webhooks.outbox where source_table = 'public.clients'`;
    expect(event).toMatchObject({ type: "clients.created", tenant: "acme" });
    expect(event?.data).not.toHaveProperty("password_hash");

    expect(await json(["untrack", "clients"])).toEqual({ table: "clients", untracked: true });
    expect(await json(["untrack", "clients"])).toEqual({ table: "clients", untracked: false });
    expect(await json(["tracked"])).toEqual([]);
  });

  it("names the flag when track_table rejects an option, and the table when it does not exist", async () => {
    const [badColumn, noTable] = await Promise.all([
      cli(["track", "clients", "--tenant-column", "acount_id"]),
      cli(["track", "public.nope"]),
    ]);
    expect(badColumn.code).toBe(2);
    expect(badColumn.stderr).toContain('--tenant-column: clients has no column acount_id');
    expect(noTable.code).toBe(2);
    expect(noTable.stderr).toMatch(/<table>: relation "public.nope" does not exist/);
  });

  it("emits a custom event", async () => {
    const r = await json<{ event_id: string; type: string }>(["emit", "invoice.paid", '{"id": 42}', "--tenant", "acme"]);
    expect(r.type).toBe("invoice.paid");
    const [row] = await t.sql`select type, tenant, data from webhooks.outbox where event_id = ${r.event_id}`;
    expect(row).toEqual({ type: "invoice.paid", tenant: "acme", data: { id: 42 } });
    const bad = await cli(["emit", "invoice.*", "{}"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/<type>: expected a dotted event name/);
  });
});

describe("webhooks", () => {
  it("creates, lists, shows, updates, disables, enables, rotates and deletes a webhook", async () => {
    const created = await json<{ id: string; secret: string; auth: unknown; headers: unknown; retry: unknown; timeout_ms: number }>([
      "webhooks", "create", "--url", `${rx.url}/crm`, "--events", "clients.*,notes.created", "--name", "crm",
      "--auth-header", "X-API-Key: k3y", "--header", "X-Source: crm", "--retry-schedule", "30s,5m", "--timeout", "10s",
    ]);
    expect(created.secret).toMatch(/^whsec_/);
    expect(created).toMatchObject({
      auth: { type: "header", name: "X-API-Key" },
      headers: { "X-Source": "crm" },
      retry: { strategy: "schedule", delays_ms: [30000, 300000], max_attempts: 3 },
      timeout_ms: 10000,
    });
    expect(JSON.stringify(created.auth)).not.toContain("k3y");
    const id = created.id;

    const list = await json<{ id: string }[]>(["webhooks", "list"]);
    expect(list.map((w) => w.id)).toContain(id);
    const human = await cli(["webhooks", "list"]);
    expect(human.stdout).toMatch(new RegExp(`${id}\\s+crm\\s+http://127\\.0\\.0\\.1`));

    const shown = await json(["webhooks", "show", id]);
    expect(shown).not.toHaveProperty("secret");
    expect(await json(["webhooks", "show", id, "--show-secret"])).toMatchObject({ secret: created.secret });

    const updated = await json(["webhooks", "update", id, "--events", "clients.created", "--max-attempts", "5", "--signature", "hex"]);
    expect(updated).toMatchObject({
      events: ["clients.created"],
      signature_scheme: "hex",
      retry: { strategy: "schedule", delays_ms: [30000, 300000], max_attempts: 5 },
    });
    expect(await json(["webhooks", "update", id, "--no-auth"])).toMatchObject({ auth: { type: "none" } });

    expect(await json(["webhooks", "disable", id])).toMatchObject({ is_active: false });
    expect(await json(["webhooks", "list", "--inactive"])).toEqual([expect.objectContaining({ id })]);
    expect(await json(["webhooks", "enable", id])).toMatchObject({ is_active: true });

    const rotated = await json<{ secret: string }>(["webhooks", "rotate-secret", id, "--grace", "1h"]);
    expect(rotated.secret).not.toBe(created.secret);

    expect(await json(["webhooks", "delete", id])).toEqual({ id, deleted: true });
    const gone = await cli(["webhooks", "show", id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`webhook ${id} not found`);
  });

  it("rotate-secret on a hex webhook says the old secret signs alone until the switch, in its output and in show", async () => {
    const created = await json<{ id: string }>([
      "webhooks", "create", "--url", `${rx.url}/hex`, "--events", "a.b", "--signature", "hex", "--secret", "old-hex-secret",
    ]);
    const at = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const r = await cli(["webhooks", "rotate-secret", created.id, "--at", at]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`old secret signs until: +${at.replace(/\./g, "\\.")}`));
    const notice = r.stderr.replace(/\s+/g, " ");
    expect(notice).toContain(`until ${at} requests are signed with the old secret alone; from ${at} on with the new secret alone`);
    expect(notice).not.toContain("grace period ends");

    const shown = await cli(["webhooks", "show", created.id]);
    expect(shown.stdout.replace(/\s+/g, " ")).toContain(`secret rotation: until ${at} requests are signed with the old secret alone`);
    const now = await json<{ previous_secret_expires_at: string | null; receivers_see: string }>(["webhooks", "rotate-secret", created.id, "--grace", "0s"]);
    expect(now).toMatchObject({ previous_secret_expires_at: null, receivers_see: expect.stringContaining("from now on") });
  });

  it("sets endpoint settings by flag, and shows the endpoint's health in show, list and status", async () => {
    const created = await json<{ id: string }>([
      "webhooks", "create", "--url", `${rx.url}/flaky`, "--events", "*", "--name", "flaky",
      "--max-in-flight", "5", "--rate-limit", "2.5", "--disable-after", "12h",
    ]);
    expect(created).toMatchObject({
      max_in_flight: 5,
      rate_limit_per_s: 2.5,
      disable_after_s: 43200,
      health: { circuit: "closed", consecutive_failures: 0, failing_since: null, next_probe_at: null },
    });
    const id = created.id;
    expect(await json(["webhooks", "update", id, "--disable-after", "3600", "--no-rate-limit"])).toMatchObject({
      max_in_flight: 5,
      rate_limit_per_s: null,
      disable_after_s: 3600,
    });
    expect(await json(["webhooks", "update", id, "--no-disable-after", "--max-in-flight", "1", "--rate-limit", "0.5"])).toMatchObject({
      max_in_flight: 1,
      rate_limit_per_s: 0.5,
      disable_after_s: null,
    });

    await t.sql`
      insert into webhooks.endpoint_health (subscription_id, circuit, consecutive_failures, failing_since, last_failure_at,
                                            opened_at, next_probe_at, probe_interval_ms)
      values (${id}, 'open', 12, now() - interval '2 hours', now(), now(), now() + interval '5 minutes', 30000)`;
    const shown = await json<{ health: unknown }>(["webhooks", "show", id]);
    expect(shown.health).toEqual({
      circuit: "open",
      consecutive_failures: 12,
      failing_since: expect.any(String),
      last_success_at: null,
      last_failure_at: expect.any(String),
      next_probe_at: expect.any(String),
    });
    const human = await cli(["webhooks", "show", id]);
    expect(human.stdout).toMatch(/max in flight:\s+1\n/);
    expect(human.stdout).toMatch(/rate limit:\s+0\.5\/s\n/);
    expect(human.stdout).toMatch(/disable after:\s+5d \(default\)\n/);
    expect(human.stdout).toMatch(/circuit:\s+open\n/);
    expect(human.stdout).toMatch(/failures in a row:\s+12\n/);
    expect(human.stdout).toMatch(/failing since:\s+\d{4}-\d\d-\d\dT/);
    expect(human.stdout).toMatch(/last success:\s+-\n/);
    expect(human.stdout).toMatch(/next probe:\s+\d{4}-\d\d-\d\dT/);
    const listed = await cli(["webhooks", "list"]);
    expect(listed.stdout).toMatch(/ACTIVE\s+CIRCUIT\s+TENANT/);
    expect(listed.stdout).toMatch(new RegExp(`${id}\\s+flaky\\s+\\S+\\s+\\*\\s+yes\\s+open`));

    type Attention = { id: string; is_active: boolean; circuit: string; consecutive_failures: number; disabled_reason: string | null };
    const status = await json<{ attention: Attention[]; webhooks: { id: string; circuit: string }[] }>(["status"]);
    expect(status.attention).toContainEqual(
      expect.objectContaining({ id, is_active: true, circuit: "open", consecutive_failures: 12, disabled_reason: null, failing_since: expect.any(String) }),
    );
    expect(status.attention.every((w) => w.circuit !== "closed" || !w.is_active)).toBe(true);
    expect(status.webhooks).toContainEqual(expect.objectContaining({ id, circuit: "open" }));
    const humanStatus = await cli(["status"]);
    expect(humanStatus.stdout).toContain("Needs attention (circuit not closed, or disabled):");
    expect(humanStatus.stdout).toMatch(/WEBHOOK\s+NAME\s+ACTIVE\s+CIRCUIT\s+FAILURES\s+FAILING SINCE\s+NEXT PROBE\s+DISABLED REASON/);
    expect(humanStatus.stdout).toMatch(new RegExp(`${id}\\s+flaky\\s+yes\\s+open\\s+12\\s+\\S+\\s+\\S+\\s+-\\n`));

    await json(["webhooks", "disable", id]);
    const disabled = await json<{ attention: Attention[] }>(["status"]);
    expect(disabled.attention).toContainEqual(
      expect.objectContaining({ id, is_active: false, circuit: "open", consecutive_failures: 12, disabled_reason: "disabled by a user" }),
    );
    expect((await cli(["status"])).stdout).toMatch(new RegExp(`${id}\\s+flaky\\s+no\\s+open\\s+12\\s+.*disabled by a user`));

    // Enabling starts the endpoint afresh: circuit closed, no failures, nothing to attend to.
    expect(await json(["webhooks", "enable", id])).toMatchObject({
      is_active: true,
      health: { circuit: "closed", consecutive_failures: 0, failing_since: null, next_probe_at: null },
    });
    const [row] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.endpoint_health where subscription_id = ${id}`;
    expect(row?.n).toBe(0);
    const after = await json<{ attention: Attention[] }>(["status"]);
    expect(after.attention.map((w) => w.id)).not.toContain(id);
    await json(["webhooks", "delete", id]);
  });

  it("names the flag when the API's validation rejects a value", async () => {
    const [privateTarget, badFilter, badSchedule] = await Promise.all([
      runCli(["webhooks", "create", "--url", "http://127.0.0.1:9/x", "--events", "a.b"], { env: { DATABASE_URL: t.url } }),
      cli(["webhooks", "create", "--url", "https://example.com/x", "--events", "a.b", "--filter", '{"data.n": {"$gt": []}}']),
      cli(["webhooks", "create", "--url", "https://example.com/x", "--events", "a.b", "--retry-schedule", "soon,later"]),
    ]);
    expect(privateTarget.code).toBe(2);
    expect(privateTarget.stderr).toMatch(/--url: .*private/);
    expect(badFilter.code).toBe(2);
    expect(badFilter.stderr).toMatch(/--filter/);
    expect(badSchedule.code).toBe(2);
    expect(badSchedule.stderr).toMatch(/--retry-schedule: .*30s,5m,1h/);
  });

  it("refuses CR/LF in a URL or a bearer token, as the API does, and stores nothing", async () => {
    const [url, token] = await Promise.all([
      cli(["webhooks", "create", "--url", "https://example.com/x\r\nX-Injected: 1", "--events", "a.b"]),
      cli(["webhooks", "create", "--url", "https://example.com/x", "--events", "a.b", "--auth-bearer", "abc\r\nX-Evil: 1"]),
    ]);
    expect(url.code).toBe(2);
    expect(url.stderr).toMatch(/--url: .*control characters/);
    expect(token.code).toBe(2);
    expect(token.stderr).toMatch(/auth.*control characters/);
    const [row] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.subscriptions where url like '%Inject%' or auth::text like '%Evil%'`;
    expect(row?.n).toBe(0);
  });

  it("test-sends to the receiver and exits 1 when it does not answer 2xx", async () => {
    const { id } = await json<{ id: string }>(["webhooks", "create", "--url", `${rx.url}/test`, "--events", "*"]);
    rx.respond({ status: 200, body: "thanks" });
    const ok = await json<{ ok: boolean; status_code: number; response_excerpt: string; delivery_id: string }>([
      "webhooks", "test", id, "--event-type", "clients.created", "--data", '{"id": 7}',
    ]);
    expect(ok).toMatchObject({ ok: true, status_code: 200, response_excerpt: "thanks" });
    const sent = rx.requests.at(-1);
    expect(sent && JSON.parse(sent.body)).toMatchObject({ type: "clients.created", data: { id: 7 } });

    rx.respond({ status: 503, body: "down for maintenance" });
    const failed = await cli(["webhooks", "test", id]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/result:\s+failed/);
    expect(failed.stdout).toMatch(/status code:\s+503/);
    expect(failed.stdout).toContain("down for maintenance");
    rx.respond({ status: 200 });
  });
});

describe("secret header values in CLI output", () => {
  it("never prints a marked or credential-like header's value in show, list or deliveries show", async () => {
    const created = await cli([
      "webhooks", "create", "--url", `${rx.url}/masked`, "--events", "*", "--header", "X-Plain: visible",
      "--header", "X-Auth: s3cr3t-auth", "--secret-header", "X-Tenant-Pin: s3cr3t-pin",
    ]);
    expect(created.code).toBe(0);
    const id = /id:\s+(\S+)/.exec(created.stdout)?.[1] ?? "";
    // In the order jsonb keeps keys; every masked one says so.
    expect(created.stdout).toMatch(/headers:\s+X-Auth \(secret\), X-Plain, X-Tenant-Pin \(secret\)/);
    const test = await json<{ ok: boolean; delivery_id: string }>(["webhooks", "test", id]);
    expect(test.ok).toBe(true);
    expect(rx.requests.at(-1)?.headers).toMatchObject({ "x-auth": "s3cr3t-auth", "x-tenant-pin": "s3cr3t-pin", "x-plain": "visible" });

    const outputs = await Promise.all([
      cli(["webhooks", "show", id]),
      cli(["webhooks", "show", id, "--json"]),
      cli(["webhooks", "list", "--json"]),
      cli(["webhooks", "list"]),
      cli(["deliveries", "show", test.delivery_id]),
      cli(["deliveries", "show", test.delivery_id, "--json"]),
    ]);
    for (const o of outputs) {
      expect(o.code).toBe(0);
      expect(o.stdout + o.stderr).not.toContain("s3cr3t");
    }
    expect(JSON.parse(outputs[1]!.stdout)).toMatchObject({ headers: { "X-Plain": "visible", "X-Auth": "****", "X-Tenant-Pin": "****" } });
    const shown = JSON.parse(outputs[5]!.stdout) as { attempts: { request_headers: Record<string, string> }[] };
    expect(shown.attempts[0]?.request_headers).toMatchObject({ "x-plain": "visible", "x-auth": "****", "x-tenant-pin": "****" });

    // --header alone on update keeps the marks.
    const updated = await json<{ headers: Record<string, string> }>(["webhooks", "update", id, "--header", "X-Tenant-Pin: s3cr3t-2"]);
    expect(updated.headers).toEqual({ "X-Tenant-Pin": "****" });
  });
});

describe("deliveries and replay", () => {
  it("lists and shows deliveries with their attempts, and replays a failed one once", async () => {
    const { id: webhook } = await json<{ id: string }>(["webhooks", "create", "--url", `${rx.url}/d`, "--events", "*"]);
    rx.respond({ status: 500, body: "boom" });
    const test = await cli(["webhooks", "test", webhook, "--json"]);
    expect(test.code).toBe(1);
    const { delivery_id } = JSON.parse(test.stdout) as { delivery_id: string };
    rx.respond({ status: 200 });

    const failed = await json<{ id: string; status: string; webhook_id: string }[]>(["deliveries", "list", "--status", "failed", "--webhook", webhook]);
    expect(failed).toEqual([expect.objectContaining({ id: delivery_id, status: "failed", webhook_id: webhook })]);
    expect(await json(["deliveries", "list", "--status", "failed", "--webhook", webhook, "--since", "2099-01-01T00:00:00Z"])).toEqual([]);

    const shown = await json<{ attempts: { response_status: number; response_body: string }[] }>(["deliveries", "show", delivery_id]);
    expect(shown.attempts).toEqual([expect.objectContaining({ response_status: 500, response_body: "boom" })]);
    const human = await cli(["deliveries", "show", delivery_id]);
    expect(human.stdout).toMatch(/status:\s+failed/);
    expect(human.stdout).toMatch(/1\s+\S+\s+500\s+\d+ms\s+127\.0\.0\.1\s+-\s+boom/);

    const dry = await json<{ matched: number; queued: number; sample: { id: string }[] }>(["replay", "--webhook", webhook, "--dry-run"]);
    expect(dry).toMatchObject({ matched: 1, queued: 0, dry_run: true, sample: [expect.objectContaining({ id: delivery_id })] });

    const refused = await cli(["replay", "--webhook", webhook]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--yes: 1 failed deliveries match; refusing/);

    const first = await json(["replay", "--webhook", webhook, "--yes"]);
    expect(first).toMatchObject({ matched: 1, queued: 1, skipped: 0 });
    const [row] = await t.sql`select status from webhooks.deliveries where id = ${delivery_id}`;
    expect(row?.status).toBe("pending");
    // Pending again: a second replay finds nothing to do.
    expect(await json(["replay", "--webhook", webhook, "--yes"])).toMatchObject({ matched: 0, queued: 0 });
    const human2 = await cli(["replay", "--webhook", webhook, "--yes"]);
    expect(human2.stderr).toContain("nothing to replay");

    // A disabled webhook's deliveries would fail at once: replaying it is refused, as the API's 409.
    await t.sql`update webhooks.deliveries set status = 'failed' where id = ${delivery_id}`;
    expect((await cli(["webhooks", "disable", webhook])).code).toBe(0);
    const disabled = await cli(["replay", "--webhook", webhook, "--yes"]);
    expect(disabled.code).toBe(1);
    expect(disabled.stderr).toContain(`webhook ${webhook} is disabled; enable it`);
    expect(await t.sql`select status from webhooks.deliveries where id = ${delivery_id}`).toEqual([{ status: "failed" }]);
    expect((await cli(["webhooks", "enable", webhook])).code).toBe(0);
  });
});

describe("keys", () => {
  it("creates a key shown once, lists it without the key, and revokes it", async () => {
    const k = await json<{ id: string; key: string; tenant: string }>(["keys", "create", "--tenant", "acme", "--name", "acme zap"]);
    expect(k.key).toMatch(/^pgw_/);
    expect(k.tenant).toBe("acme");
    const list = await cli(["keys", "list", "--json"]);
    expect(list.stdout).not.toContain(k.key);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ id: k.id, name: "acme zap", revoked_at: null })]);
    const human = await cli(["keys", "create"]);
    expect(human.stdout.trim()).toMatch(/^pgw_\S+$/);
    expect(human.stderr).toMatch(/admin key.*not shown again/);
    expect(await json(["keys", "revoke", k.id])).toMatchObject({ id: k.id, revoked_at: expect.any(String) });
  });
});

describe("prune and status", () => {
  it("reports outbox lag, owed deliveries and per-webhook health", async () => {
    const s = await json<{
      outbox: { undispatched: number; lag_ms: number };
      deliveries: Record<string, number>;
      webhooks: { attempts: number; success_rate: number | null; median_latency_ms: number | null }[];
    }>(["status"]);
    // The emitted and captured events above were never dispatched (no dispatcher runs here).
    expect(s.outbox.undispatched).toBeGreaterThan(0);
    expect(s.outbox.lag_ms).toBeGreaterThan(0);
    expect(s.deliveries).toEqual({ pending: expect.any(Number), retrying: 0, failed: expect.any(Number) });
    const tested = s.webhooks.filter((w) => w.attempts > 0);
    expect(tested.length).toBeGreaterThan(0);
    expect(tested.every((w) => w.success_rate !== null && w.median_latency_ms !== null)).toBe(true);
    const human = await cli(["status"]);
    expect(human.stdout).toMatch(/outbox lag:\s+\d+\w+ \(\d+ events waiting\)/);
    expect(human.stdout).toMatch(/WEBHOOK\s+NAME\s+URL\s+ACTIVE\s+CIRCUIT\s+ATTEMPTS\s+SUCCESS\s+MEDIAN\s+FAILED/);
  });

  it("deletes finished deliveries, their attempts and dispatched events older than the cut-off", async () => {
    await t.sql`update webhooks.outbox set dispatched_at = coalesce(dispatched_at, now()) - interval '40 days'`;
    await t.sql`update webhooks.deliveries set finished_at = now() - interval '40 days' where finished_at is not null`;
    const [before] = await t.sql<{ d: number; a: number; o: number }[]>`
      select (select count(*)::int from webhooks.deliveries where finished_at is not null) as d,
             (select count(*)::int from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
               where d.finished_at is not null) as a,
             (select count(*)::int from webhooks.outbox o where not exists
               (select 1 from webhooks.deliveries d where d.outbox_id = o.id and d.finished_at is null)) as o`;
    expect(before?.d).toBeGreaterThan(0);

    const dry = await json<Record<string, number>>(["prune", "--older-than", "30d", "--dry-run"]);
    expect(dry).toMatchObject({ dry_run: true, deliveries: before?.d, attempts: before?.a, outbox: before?.o });
    const nothing = await json<Record<string, number>>(["prune", "--older-than", "60d"]);
    expect(nothing).toMatchObject({ deliveries: 0, attempts: 0, outbox: 0 });

    const done = await json<Record<string, number>>(["prune", "--older-than", "30d", "--batch-size", "2"]);
    expect(done).toMatchObject({ dry_run: false, deliveries: before?.d, attempts: before?.a, outbox: before?.o });
    const [left] = await t.sql<{ d: number }[]>`select count(*)::int as d from webhooks.deliveries where finished_at is not null`;
    expect(left?.d).toBe(0);
    // Still-owed deliveries (pending after the replay) and their events stay.
    const [owed] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries d join webhooks.outbox o on o.id = d.outbox_id`;
    expect(owed?.n).toBeGreaterThan(0);
    const human = await cli(["prune", "--older-than", "30d"]);
    expect(human.stdout).toMatch(/^Deleted 0 deliveries, 0 attempts, 0 events/);
  });
});

describe("zero-setup database", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "pgw-cli-embedded-"));
    // As root, Postgres runs as another user, which must be able to reach the data directory.
    chmodSync(dir, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("starts an embedded Postgres under ./.pg-webhooks when DATABASE_URL is unset, says so, and stops it again", async () => {
    const run = (args: string[]): Promise<CliResult> => runCli(args, { cwd: dir, timeoutMs: 60_000 });
    const first = await run(["tracked", "--json"]);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual([]);
    expect(first.stderr).toMatch(/embedded Postgres running on 127\.0\.0\.1:\d+/);
    expect(first.stderr).toContain("stopping the embedded Postgres this command started");
    // The data stays: a second command finds the schema already there.
    const second = await run(["migrate", "--json"]);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ applied: [] });
  }, 90_000);
});
