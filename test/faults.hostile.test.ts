// Hostile receivers and undeliverable events: nothing a receiver answers and no event the
// renderer chokes on may stop the dispatcher recording, for that webhook or any other.
// Real receivers (node:http, and raw TCP for what node:http will not send), a real dispatcher.
import { rowCounts, startApi, webhookBody } from "./helpers/api";
import { runCli, spawnCli } from "./helpers/cli";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { refusedUrl, startRawReceiver, startReceiver, type RawReceiver, type Receiver } from "./helpers/receiver";
import { insertWebhook, runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";
import type { RetryPolicy } from "../src/model/retry-policy";

let t: TestDatabase;
let healthy: Receiver;
let dispatcher: RunningDispatcher;
const raws: RawReceiver[] = [];

const ONE_TRY: RetryPolicy = { max_attempts: 1, strategy: "schedule", delays_ms: [100] };

interface AttemptRow {
  webhook: string;
  status: string;
  response_status: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  error: string | null;
  note: string | null;
  request_body: string;
}

async function attemptsOf(webhookId: string): Promise<AttemptRow[]> {
  return t.sql<AttemptRow[]>`
    select d.subscription_id as webhook, d.status, a.response_status, a.response_headers, a.response_body, a.error,
           a.note, coalesce(a.request_body, d.body) as request_body
      from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${webhookId}
     order by a.id`;
}

async function raw(answer: Buffer | string): Promise<string> {
  const r = await startRawReceiver(answer);
  raws.push(r);
  return r.url;
}

const ok = (extra = ""): string => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n${extra}`;
const withBody = (head: string, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from(`${head}content-length: ${body.length}\r\n\r\n`, "latin1"), body]);

beforeAll(async () => {
  t = await createTestDatabase();
  healthy = await startReceiver({ status: 200, body: "fine" });
  dispatcher = await runDispatcher(t.url);
});
afterAll(async () => {
  await dispatcher?.stop();
  await healthy?.close();
  for (const r of raws) await r.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
  healthy.requests.length = 0;
});

describe("a receiver's answer", () => {
  it("never stops recording: NUL bytes, invalid UTF-8, huge or malformed headers and odd status lines are all recorded while a healthy webhook keeps being delivered", async () => {
    const nulBody = await startReceiver({ status: 200, body: "a\u0000b" });
    try {
      const hostile: Record<string, string> = {
        nulBody: `${nulBody.url}/nul`,
        invalidUtf8: await raw(withBody(ok(), Buffer.from([0x61, 0xff, 0xfe, 0xc3, 0x28, 0x62]))),
        nulRaw: await raw(withBody(ok(), Buffer.from("x\u0000y\u0000z", "latin1"))),
        utf16: await raw(withBody(ok().replace("text/plain", "text/plain; charset=utf-16le"), Buffer.from("h\u00e9llo", "utf16le"))),
        latin1Header: await raw(withBody(ok("x-odd: caf\xe9 \xff\r\n"), Buffer.from("ok"))),
        nulHeader: await raw(withBody(ok("x-nul: a\u0000b\r\n"), Buffer.from("ok"))),
        hugeHeader: await raw(withBody(ok(`x-huge: ${"h".repeat(200_000)}\r\n`), Buffer.from("ok"))),
        badHeaderLine: await raw(withBody(ok("this is not a header\r\n"), Buffer.from("ok"))),
        nulReason: await raw(withBody("HTTP/1.1 200 O\u0000K\xff\r\nconnection: close\r\n", Buffer.from("ok"))),
        status999: await raw(withBody("HTTP/1.1 999 Whatever\r\nconnection: close\r\n", Buffer.from("ok"))),
        statusGarbage: await raw("HTTP/1.1 2x0 OK\r\n\r\n"),
        notHttp: await raw("\u0000\u0001\u0002 hello\r\n\r\n"),
      };
      const ids: Record<string, string> = {};
      for (const [name, url] of Object.entries(hostile)) ids[name] = (await insertWebhook(t.sql, { url, retry: ONE_TRY })).id;
      const good = await insertWebhook(t.sql, { url: `${healthy.url}/good`, retry: ONE_TRY });

      const events = 5;
      for (let i = 0; i < events; i++) await t.sql`select webhooks.emit('invoice.paid', ${t.sql.json({ n: i })})`;
      const webhooks = Object.keys(hostile).length + 1;
      await settled(t.sql, events * webhooks, 60_000);

      // Every delivery has exactly one recorded attempt, and the healthy webhook got every event.
      const [counts] = await t.sql<{ deliveries: number; attempts: number }[]>`
        select (select count(*)::int from webhooks.deliveries) as deliveries, (select count(*)::int from webhooks.attempts) as attempts`;
      expect(counts).toEqual({ deliveries: events * webhooks, attempts: events * webhooks });
      const goodRows = await attemptsOf(good.id);
      expect(goodRows.map((r) => [r.status, r.response_status, r.response_body])).toEqual(
        Array.from({ length: events }, () => ["succeeded", 200, "fine"]),
      );

      const first = async (name: string): Promise<AttemptRow> => {
        const rows = await attemptsOf(ids[name] as string);
        expect(rows).toHaveLength(events);
        return rows[0] as AttemptRow;
      };
      // What is replaced is replaced with U+FFFD, and the note says so.
      const nul = await first("nulBody");
      expect(nul).toMatchObject({ status: "succeeded", response_status: 200, response_body: "a\uFFFDb" });
      expect(nul.note).toMatch(/response body: 1 NUL/);
      const nulRaw = await first("nulRaw");
      expect(nulRaw.response_body).toBe("x\uFFFDy\uFFFDz");
      expect(nulRaw.note).toMatch(/response body: 2 NUL/);
      const bad = await first("invalidUtf8");
      expect(bad.response_body).toBe("a\uFFFD\uFFFD\uFFFD(b");
      expect(bad.note).toMatch(/not valid utf-8/);
      // A declared charset is honoured: nothing to replace.
      const utf16 = await first("utf16");
      expect(utf16).toMatchObject({ response_body: "h\u00e9llo", note: null });
      // Header bytes are kept one character per byte.
      const latin1 = await first("latin1Header");
      expect(latin1.response_headers?.["x-odd"]).toBe("caf\u00e9 \u00ff");
      // What the HTTP parser refuses is a failed attempt with its error.
      for (const name of ["nulHeader", "hugeHeader", "badHeaderLine", "statusGarbage", "notHttp"]) {
        const row = await first(name);
        expect([name, row.status, row.response_status]).toEqual([name, "failed", null]);
        expect(row.error).toEqual(expect.any(String));
      }
      // The reason phrase is not kept, so a NUL in it harms nothing; a status beyond 5xx is not a success.
      expect(await first("nulReason")).toMatchObject({ status: "succeeded", response_status: 200, response_body: "ok" });
      expect(await first("status999")).toMatchObject({ status: "failed", response_status: 999, error: null });
      expect((await first("hugeHeader")).error).toMatch(/Headers Overflow/);
      expect((await first("nulHeader")).error).toMatch(/Invalid header value char/);
    } finally {
      await nulBody.close();
    }
  });

  it("splits a batch Postgres refuses: the refused attempt is stored without its contents, with a note, and the others as they were", async () => {
    // A row Postgres refuses for a reason nobody foresaw, made real with a trigger.
    await t.sql.unsafe(`
      create function public.refuse_poison() returns trigger language plpgsql as $$
      begin
        if new.response_body = 'poison' then raise exception 'refusing this row'; end if;
        return new;
      end $$;
      create trigger refuse_poison before insert on webhooks.attempts for each row execute function public.refuse_poison()`);
    const poison = await startReceiver({ status: 200, body: "poison" });
    try {
      const bad = await insertWebhook(t.sql, { url: `${poison.url}/p`, retry: ONE_TRY });
      const good = await insertWebhook(t.sql, { url: `${healthy.url}/good`, retry: ONE_TRY });
      const events = 20;
      for (let i = 0; i < events; i++) await t.sql`select webhooks.emit('invoice.paid', ${t.sql.json({ n: i })})`;
      expect(await settled(t.sql, events * 2, 30_000)).toEqual({ succeeded: events * 2 });

      const goodRows = await attemptsOf(good.id);
      expect(goodRows.map((r) => [r.response_body, r.note])).toEqual(Array.from({ length: events }, () => ["fine", null]));
      expect(goodRows.every((r) => r.request_body.includes('"type":"invoice.paid"'))).toBe(true);
      const badRows = await attemptsOf(bad.id);
      expect(badRows).toHaveLength(events);
      for (const r of badRows) {
        expect(r).toMatchObject({ status: "succeeded", response_status: 200, response_body: null, request_body: "" });
        expect(r.note).toMatch(/request and response contents not stored: .*refusing this row/);
      }
    } finally {
      await poison.close();
      await t.sql.unsafe(`drop trigger refuse_poison on webhooks.attempts; drop function public.refuse_poison()`);
    }
  });
});

describe("an event that cannot be rendered", () => {
  /** The deepest nesting Postgres accepts here (its stack limit decides), found by trying. */
  async function deepestAccepted(kind: "jsonb" | "json"): Promise<number> {
    for (const depth of [200_000, 100_000, 49_000, 40_000, 30_000, 20_000, 10_000, 5_000]) {
      try {
        await t.sql.unsafe(`select (repeat('[', ${depth}) || repeat(']', ${depth}))::${kind}`);
        return depth;
      } catch {
        // too deep for this server; try less
      }
    }
    throw new Error("Postgres accepted no deep value");
  }

  it("fails with its error recorded and never holds the lane: later deliveries to the webhook still succeed", async () => {
    const depth = await deepestAccepted("jsonb");
    expect(depth).toBeGreaterThanOrEqual(5_000);
    const w = await insertWebhook(t.sql, { url: `${healthy.url}/deep`, retry: ONE_TRY, max_in_flight: 1 });
    // More of them than the lane's window and the breaker's threshold (10).
    const deep = 12;
    for (let i = 0; i < deep; i++) {
      await t.sql.unsafe(`select webhooks.emit('deep.event', (repeat('[', ${depth}) || repeat(']', ${depth}))::jsonb)`);
    }
    await t.sql`select webhooks.emit('shallow.event', ${t.sql.json({ ok: true })})`;
    expect(await settled(t.sql, deep + 1, 30_000)).toEqual({ failed: deep, succeeded: 1 });

    const rows = await t.sql<{ event_type: string; status: string; last_error: string | null; attempts: number; recorded: number }[]>`
      select d.event_type, d.status, d.last_error, d.attempts, (select count(*)::int from webhooks.attempts a where a.delivery_id = d.id) as recorded
        from webhooks.deliveries d where d.subscription_id = ${w.id} order by d.created_at`;
    for (const r of rows.filter((x) => x.event_type === "deep.event")) {
      expect(r).toMatchObject({ status: "failed", attempts: 1, recorded: 1 });
      expect(r.last_error).toMatch(/could not build the request, so none was sent: RangeError/);
    }
    expect(healthy.requests.map((r) => JSON.parse(r.body).type)).toEqual(["shallow.event"]);
    // A render failure is not the endpoint's: its circuit stays closed.
    const [health] = await t.sql`select circuit from webhooks.endpoint_health where subscription_id = ${w.id}`;
    expect(health?.circuit ?? "closed").toBe("closed");
  });

  it("does the same for a deep json (not jsonb) column of a tracked table", async () => {
    const depth = await deepestAccepted("json");
    await t.sql`create table public.deep_docs (id int primary key, doc json)`;
    try {
      await t.sql`select webhooks.track_table('public.deep_docs')`;
      const w = await insertWebhook(t.sql, { url: `${healthy.url}/deep-json`, events: ["deep_docs.*"], retry: ONE_TRY });
      await t.sql.unsafe(`insert into public.deep_docs values (1, (repeat('[', ${depth}) || repeat(']', ${depth}))::json)`);
      await t.sql`insert into public.deep_docs values (2, '{"fine": true}')`;
      const rows = await waitUntil(async () => {
        const r = await t.sql<{ status: string }[]>`select status from webhooks.deliveries where subscription_id = ${w.id}`;
        return r.length === 2 && r.every((x) => x.status === "succeeded" || x.status === "failed") ? r : null;
      }, 30_000, "both deliveries settled");
      // However capture carried the deep value, the shallow row after it is delivered.
      expect(rows.filter((r) => r.status === "succeeded").length).toBeGreaterThanOrEqual(1);
      expect(healthy.requests.some((r) => (JSON.parse(r.body) as { data: { id: number } }).data.id === 2)).toBe(true);
    } finally {
      await t.sql`select webhooks.untrack_table('public.deep_docs')`.catch(() => {});
      await t.sql`drop table public.deep_docs`;
    }
  });
});

describe("a tiny rate limit", () => {
  it("is refused by the API and the CLI, naming the floor, and nothing is written", async () => {
    const api = await startApi();
    try {
      const before = await rowCounts(api.db);
      for (const rate of [0.0000001, 0.0009, 5e-324]) {
        const res = await api.call("POST", "/v1/webhooks", { body: webhookBody(healthy.url, { rate_limit_per_s: rate }) });
        expect(res.statusCode).toBe(400);
        expect(res.json().error).toMatchObject({ code: "invalid_input", details: [{ path: "rate_limit_per_s", message: expect.stringMatching(/from 0\.001/) }] });
      }
      const created = await api.call("POST", "/v1/webhooks", { body: webhookBody(healthy.url, { rate_limit_per_s: 0.001 }) });
      expect(created.statusCode).toBe(201);
      const patched = await api.call("PATCH", `/v1/webhooks/${created.json().id}`, { body: { rate_limit_per_s: 0.0000001 } });
      expect(patched.statusCode).toBe(400);
      const cli = await runCli(["webhooks", "create", "--url", `${healthy.url}/x`, "--events", "*", "--rate-limit", "0.0000001"], {
        env: { DATABASE_URL: api.db.url },
      });
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toMatch(/--rate-limit.*from 0\.001/);
      const [row] = await api.db.sql`select rate_limit_per_s from webhooks.subscriptions`;
      expect(row?.rate_limit_per_s).toBe(0.001);
      expect(await rowCounts(api.db)).toEqual({ ...before, subscriptions: 1 });
    } finally {
      await api.close();
    }
  });

  it("stored below the floor never overflows a timer: the daemon prints no TimeoutOverflowWarning while a request waits its turn", async () => {
    // Rows written before the floor existed may hold such a rate; the real daemon runs on them.
    const db = await createTestDatabase();
    const daemon = { stop: async (): Promise<unknown> => undefined, output: () => ({ stdout: "", stderr: "" }) };
    try {
      await db.sql`alter table webhooks.subscriptions drop constraint subscriptions_rate_limit_floor`;
      await insertWebhook(db.sql, { url: `${healthy.url}/slow`, rate_limit_per_s: 0.0000001, retry: ONE_TRY });
      await db.sql`select webhooks.emit('invoice.paid', '{"n": 1}'::jsonb)`;
      await db.sql`select webhooks.emit('invoice.paid', '{"n": 2}'::jsonb)`;
      // Intervals from the environment reach timers too: longer than a timer can wait.
      const env = {
        DATABASE_URL: db.url,
        WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
        WEBHOOKS_POLL_INTERVAL_MS: "9999999999",
        WEBHOOKS_DISPATCHER_TIMEOUT_MS: "99999999999",
      };
      Object.assign(daemon, spawnCli(["start", "--no-api"], { env }));
      await healthy.waitFor(1);
      // The second waits in its lane; an overflowed timer would wake it every millisecond.
      await waitUntil(async () => {
        const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.deliveries where status = 'succeeded'`;
        return r?.n === 1;
      });
      await new Promise((r) => setTimeout(r, 500));
      expect(healthy.requests).toHaveLength(1);
      await daemon.stop();
      expect(daemon.output().stderr).not.toContain("TimeoutOverflowWarning");
    } finally {
      await daemon.stop();
      await db.close();
    }
  });
});

describe("the address connected to", () => {
  it("is recorded on each attempt; null when nothing was reached", async () => {
    const w = await insertWebhook(t.sql, { url: `${healthy.url}/addr`, retry: ONE_TRY });
    const gone = await insertWebhook(t.sql, { url: await refusedUrl("/refused"), retry: ONE_TRY });
    await t.sql`select webhooks.emit('invoice.paid', '{"n": 1}'::jsonb)`;
    await settled(t.sql, 2);
    const rows = await t.sql<{ webhook: string; address: string | null }[]>`
      select d.subscription_id as webhook, host(a.remote_address) as address
        from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id order by d.subscription_id = ${w.id} desc`;
    expect(rows).toEqual([
      { webhook: w.id, address: "127.0.0.1" },
      { webhook: gone.id, address: null },
    ]);

    // The API's attempt listing shows it (and the note, null here).
    const api = await startApi({}, t);
    try {
      const [d] = await t.sql<{ id: string }[]>`select id from webhooks.deliveries where subscription_id = ${w.id}`;
      const res = await api.call("GET", `/v1/deliveries/${d?.id}`);
      expect(res.statusCode).toBe(200);
      expect(res.json().attempts).toEqual([expect.objectContaining({ remote_address: "127.0.0.1", note: null, response_status: 200 })]);
    } finally {
      await api.close();
    }
  });
});
