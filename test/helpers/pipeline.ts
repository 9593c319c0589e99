// Runs a real dispatcher in-process against a test database, delivering to real receivers.
import { loadConfig, type Config } from "../../src/config";
import { createCore } from "../../src/core";
import type { Queryable } from "../../src/db/connection";
import { generateSecret } from "../../src/delivery/sign";
import { CLOSE_AFTER_DEADLINE_MS, startDispatcher, type Dispatcher } from "../../src/dispatch/dispatcher";
import type { RetryPolicy } from "../../src/model/retry-policy";
import type { SignatureScheme } from "../../src/model/enums";

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
    WEBHOOKS_POLL_INTERVAL_MS: "200",
    WEBHOOKS_DISPATCHER_TIMEOUT_MS: "3000",
    WEBHOOKS_SHUTDOWN_GRACE_MS: "2000",
    LOG_LEVEL: "silent",
    ...overrides,
  });
}

export interface RunningDispatcher extends Dispatcher {
  /** Closes its core: the dispatcher, then the sender and the pool. */
  stop(): Promise<void>;
}

export async function runDispatcher(databaseUrl: string, overrides: Record<string, string> = {}): Promise<RunningDispatcher> {
  const config = testConfig(overrides);
  const core = createCore(config, { database: databaseUrl, pool: config.WEBHOOKS_CONCURRENCY + 3 });
  const { ctx } = core.sending();
  const d = await startDispatcher({ config, databaseUrl, ctx });
  core.defer("the dispatcher", (deadline) => d.close(deadline), { overrunMs: CLOSE_AFTER_DEADLINE_MS });
  return { ...d, stop: () => core.close() };
}

/** What a test gives insertWebhook: a url and any settings to differ from the defaults below. */
export interface TestWebhook {
  url: string;
  events?: string[];
  tenant?: string | null;
  filter?: unknown;
  signature_scheme?: SignatureScheme;
  signature_header?: string | null;
  secret?: string;
  retry?: RetryPolicy;
  timeout_ms?: number;
  is_active?: boolean;
  max_in_flight?: number;
  rate_limit_per_s?: number | null;
  disable_after_s?: number | null;
}

/** Inserts a webhook row directly (the services and API are tested on their own). */
export async function insertWebhook(sql: Queryable, w: TestWebhook): Promise<{ id: string; secret: string }> {
  const secret = w.secret ?? generateSecret();
  const retry = w.retry ?? { max_attempts: 3, strategy: "schedule", delays_ms: [100, 200] };
  const [row] = await sql<{ id: string }[]>`
    insert into webhooks.subscriptions (url, events, tenant, filter, signature_scheme, signature_header, secret, retry, timeout_ms, is_active,
                                        max_in_flight, rate_limit_per_s, disable_after_s)
    values (${w.url}, ${w.events ?? ["*"]}, ${w.tenant ?? null}, ${w.filter === undefined ? null : sql.json(w.filter as never)},
            ${w.signature_scheme ?? "standard"}, ${w.signature_header ?? null}, ${secret}, ${sql.json(retry as never)},
            ${w.timeout_ms ?? 5000}, ${w.is_active ?? true}, ${w.max_in_flight ?? 10}, ${w.rate_limit_per_s ?? null},
            ${w.disable_after_s ?? null})
    returning id`;
  if (!row) throw new Error("insert returned no row");
  return { id: row.id, secret };
}

export async function waitUntil<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 20000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until no delivery is pending or retrying and returns the counts per status. */
export async function settled(sql: Queryable, expectedTotal: number, timeoutMs = 30000): Promise<Record<string, number>> {
  return waitUntil(async () => {
    const rows = await sql<{ status: string; n: number }[]>`select status, count(*)::int as n from webhooks.deliveries group by status`;
    const counts = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    const total = rows.reduce((a, r) => a + r.n, 0);
    const open = (counts.pending ?? 0) + (counts.retrying ?? 0);
    const undispatched = await sql`select 1 from webhooks.outbox where dispatched_at is null limit 1`;
    return total >= expectedTotal && open === 0 && undispatched.length === 0 ? counts : null;
  }, timeoutMs, `${expectedTotal} settled deliveries`);
}
