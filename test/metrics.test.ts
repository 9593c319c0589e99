// GET /metrics: Prometheus text format with the dispatcher's counters, gauges read from the
// database at scrape time, and Node's process metrics; labelled by webhook id, never by URL.
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { buildApp } from "../src/api/app";
import { connect } from "../src/db/connection";
import { createSender, type Sender } from "../src/delivery/client";
import { createLogger } from "../src/logger";
import { createMetrics, type Metrics } from "../src/metrics";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { testConfig } from "./helpers/pipeline";

/** A URL no metric may ever show: it carries credentials in the userinfo and the query. */
const SECRET_URL_PARTS = ["receiver.example", "hunter2", "tok_s3cret"];
const URL = "https://metrics-user:hunter2@receiver.example/hooks?token=tok_s3cret";

let db: TestDatabase;
let sender: Sender;
let metrics: Metrics;
let app: FastifyInstance;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig();
  sender = createSender({ allowPrivateTargets: true });
  const logger = createLogger("silent", false);
  metrics = createMetrics(db, { logger });
  app = buildApp({ conn: db, ctx: { conn: db, sender, logger, observer: metrics.observer }, config, metrics });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await sender.close();
  await db.close();
});
beforeEach(async () => {
  await db.sql`truncate webhooks.outbox, webhooks.subscriptions cascade`;
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (\\S+)(?: -?\\d+)?$`);
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * Parses Prometheus text format 0.0.4 strictly enough to catch a broken exposition: every
 * line is a HELP, a TYPE or a sample; every sample belongs to a family declared before it.
 */
function parseExposition(text: string): Sample[] {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const help = new RegExp(`^# HELP (${NAME}) .*$`).exec(line);
    if (help) continue;
    const type = new RegExp(`^# TYPE (${NAME}) (\\w+)$`).exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      if (!TYPES.has(kind)) throw new Error(`unknown type in: ${line}`);
      if (types.has(name)) throw new Error(`TYPE declared twice: ${line}`);
      types.set(name, kind);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a HELP, TYPE or sample line: ${JSON.stringify(line)}`);
    const name = m[1] as string;
    const family = [name, name.replace(/_(bucket|sum|count)$/, "")].find((n) => types.has(n));
    if (!family) throw new Error(`sample before its TYPE: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(new RegExp(LABEL, "g"))) labels[k as string] = v as string;
    const raw = m[m.length - 1] as string;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    // Prometheus reads values with Go's ParseFloat, which takes NaN in any case; prom-client
    // writes "Nan" for a fresh event-loop histogram's mean.
    if (Number.isNaN(value) && !/^nan$/i.test(raw)) throw new Error(`bad value in: ${line}`);
    samples.push({ name, labels, value });
  }
  return samples;
}

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const res = await app.inject({ method: "GET", url: "/metrics" });
  expect(res.statusCode).toBe(200);
  return { text: res.body, samples: parseExposition(res.body) };
}

/** The samples of one series, as "labels → value" for readable equality checks. */
function series(samples: Sample[], name: string): Record<string, number> {
  return Object.fromEntries(
    samples.filter((s) => s.name === name).map((s) => [JSON.stringify(s.labels), s.value]),
  );
}

function one(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return series(samples, name)[JSON.stringify(labels)];
}

async function insertWebhook(): Promise<string> {
  const [row] = await db.sql<{ id: string }[]>`
    insert into webhooks.subscriptions (url, events, secret, retry)
    values (${URL}, array['*'], 'whsec_dGVzdA==', '{}') returning id`;
  if (!row) throw new Error("no webhook");
  return row.id;
}

/** Delivery rows in the given statuses for one webhook, each with its own (dispatched) event. */
async function insertDeliveries(webhookId: string, statuses: string[]): Promise<void> {
  for (const status of statuses) {
    await db.sql`
      with e as (
        insert into webhooks.outbox (type, data, dispatched_at) values ('clients.created', '{"id": 1}', now())
        returning id, event_id
      )
      insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, status)
      select ${webhookId}, e.id, e.event_id, 'clients.created', ${status} from e`;
  }
}

describe("GET /metrics", () => {
  it("answers Prometheus text format without an API key, with Node's process metrics", async () => {
    const res = await app.inject({ method: "GET", url: "/metrics" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    const names = new Set(parseExposition(res.body).map((s) => s.name));
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds"]) {
      expect(names).toContain(name);
    }
  });

  it("is not part of the OpenAPI document", async () => {
    const doc = app.swagger() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).not.toContain("/metrics");
  });

  it("reports an idle database as zero lag, nothing waiting and no open circuits", async () => {
    await insertWebhook();
    const { samples } = await scrape();
    expect(one(samples, "pgwebhooks_outbox_lag_seconds")).toBe(0);
    expect(one(samples, "pgwebhooks_circuits_open")).toBe(0);
    expect(series(samples, "pgwebhooks_deliveries_waiting")).toEqual({});
    expect(series(samples, "pgwebhooks_circuit_state")).toEqual({});
  });

  it("reports the age of the oldest undispatched event as the outbox lag", async () => {
    await db.sql`
      insert into webhooks.outbox (type, data, occurred_at, dispatched_at) values
        ('a.dispatched', '{}', now() - interval '1 hour', now()),
        ('a.waiting', '{}', now() - interval '90 seconds', null),
        ('a.newer', '{}', now() - interval '5 seconds', null)`;
    const lag = one((await scrape()).samples, "pgwebhooks_outbox_lag_seconds");
    expect(lag).toBeGreaterThanOrEqual(90);
    expect(lag).toBeLessThan(100);
  });

  it("counts pending and retrying deliveries per webhook, leaving out webhooks with none", async () => {
    const [busy, quiet, done] = [await insertWebhook(), await insertWebhook(), await insertWebhook()];
    await insertDeliveries(busy, ["pending", "pending", "retrying", "succeeded", "failed", "cancelled"]);
    await insertDeliveries(quiet, ["retrying"]);
    await insertDeliveries(done, ["succeeded", "failed"]);
    const { samples } = await scrape();
    expect(series(samples, "pgwebhooks_deliveries_waiting")).toEqual({
      [JSON.stringify({ webhook: busy })]: 3,
      [JSON.stringify({ webhook: quiet })]: 1,
    });
  });

  it("reports circuits that are not closed: how many, and each one's state", async () => {
    const [open, halfOpen, closed] = [await insertWebhook(), await insertWebhook(), await insertWebhook()];
    await db.sql`
      insert into webhooks.endpoint_health (subscription_id, circuit) values
        (${open}, 'open'), (${halfOpen}, 'half_open'), (${closed}, 'closed')`;
    const { samples } = await scrape();
    expect(one(samples, "pgwebhooks_circuits_open")).toBe(2);
    expect(series(samples, "pgwebhooks_circuit_state")).toEqual({
      [JSON.stringify({ webhook: open })]: 2,
      [JSON.stringify({ webhook: halfOpen })]: 1,
    });
  });

  it("turns observer calls into attempt, delivery and duration series labelled by webhook id", async () => {
    const [a, b] = [await insertWebhook(), await insertWebhook()];
    metrics.observer.attempt(a, "success", 120);
    metrics.observer.attempt(a, "failure", 3000);
    metrics.observer.attempt(b, "failure", 4);
    metrics.observer.delivery(a, "retrying");
    metrics.observer.delivery(a, "succeeded");
    metrics.observer.delivery(b, "failed");
    const { samples } = await scrape();

    expect(one(samples, "pgwebhooks_attempts_total", { webhook: a, outcome: "success" })).toBe(1);
    expect(one(samples, "pgwebhooks_attempts_total", { webhook: a, outcome: "failure" })).toBe(1);
    expect(one(samples, "pgwebhooks_attempts_total", { webhook: b, outcome: "failure" })).toBe(1);
    expect(one(samples, "pgwebhooks_deliveries_total", { webhook: a, status: "retrying" })).toBe(1);
    expect(one(samples, "pgwebhooks_deliveries_total", { webhook: a, status: "succeeded" })).toBe(1);
    expect(one(samples, "pgwebhooks_deliveries_total", { webhook: b, status: "failed" })).toBe(1);

    expect(one(samples, "pgwebhooks_attempt_duration_seconds_count", { webhook: a })).toBe(2);
    expect(one(samples, "pgwebhooks_attempt_duration_seconds_sum", { webhook: a })).toBeCloseTo(3.12);
    const bucket = (webhook: string, le: string) => one(samples, "pgwebhooks_attempt_duration_seconds_bucket", { le, webhook });
    expect([bucket(a, "0.1"), bucket(a, "0.25"), bucket(a, "2.5"), bucket(a, "5"), bucket(a, "+Inf")]).toEqual([0, 1, 1, 2, 2]);
    expect([bucket(b, "0.005"), bucket(b, "30")]).toEqual([1, 1]);
  });

  it("never shows a webhook's URL, only its id", async () => {
    const id = await insertWebhook();
    await insertDeliveries(id, ["pending"]);
    await db.sql`insert into webhooks.endpoint_health (subscription_id, circuit) values (${id}, 'open')`;
    metrics.observer.attempt(id, "failure", 10);
    const { text, samples } = await scrape();
    expect(samples.some((s) => s.labels.webhook === id)).toBe(true);
    for (const part of SECRET_URL_PARTS) expect(text).not.toContain(part);
    const labelNames = new Set(samples.filter((s) => s.name.startsWith("pgwebhooks_")).flatMap((s) => Object.keys(s.labels)));
    expect([...labelNames].sort()).toEqual(["le", "outcome", "status", "webhook"]);
  });

  it("still answers when the database does not, leaving out the database gauges and warning", async () => {
    const warnings: { gauge: string; msg: string }[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
    const down = connect("postgres://postgres@127.0.0.1:1/none", { max: 1 });
    const downMetrics = createMetrics(down, { logger });
    const downApp = buildApp({ conn: down, ctx: { conn: down, sender, logger }, config: testConfig(), metrics: downMetrics });
    try {
      downMetrics.observer.attempt("wh_1", "success", 50);
      const res = await downApp.inject({ method: "GET", url: "/metrics" });
      expect(res.statusCode).toBe(200);
      const samples = parseExposition(res.body);
      const names = new Set(samples.map((s) => s.name));
      for (const gauge of ["outbox_lag_seconds", "deliveries_waiting", "circuits_open", "circuit_state"]) {
        expect(names).not.toContain(`pgwebhooks_${gauge}`);
      }
      expect(one(samples, "pgwebhooks_attempts_total", { webhook: "wh_1", outcome: "success" })).toBe(1);
      expect(names).toContain("process_resident_memory_bytes");
      expect(warnings.map((w) => w.gauge).sort()).toEqual(["circuit_state", "circuits_open", "deliveries_waiting", "inbound_pending_lag_seconds", "outbox_lag_seconds"]);
    } finally {
      await downApp.close();
      await down.close();
    }
  });
});
