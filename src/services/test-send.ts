// Test sends: one event, made up now, sent to one webhook through the real signing and sending
// path and recorded like any delivery. Works on disabled webhooks too; never retried.
import { z } from "zod";
import type { Connection } from "../db/connection";
import type { DeliveryStatus } from "../model/enums";
import type { DeliverContext } from "../dispatch/context";
import { claim, type AttemptOptions } from "../dispatch/claim";
import { policyReader, storeResults } from "../dispatch/record";
import { send } from "../dispatch/send";
import { DEFAULT_BREAKER } from "../model/circuit";
import { stringifyExact } from "../delivery/event-json";
import { getWebhook } from "./webhooks";
import type { WebhookView } from "../model/webhook";
import type { Scope } from "./scope";
import { parseInput, storableJson, strictObject } from "../model/validation";

export const TEST_EVENT_TYPE = "webhook.test";
/** Characters of the receiver's answer returned by a test send (the attempt keeps up to 5,000). */
export const RESPONSE_EXCERPT_CHARS = 1000;

export const testSendSchema = strictObject({
  event_type: z
    .string({ error: "expected an event type such as clients.created" })
    .max(200, { error: "expected an event type of at most 200 characters" })
    .regex(/^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/, { error: "expected an exact event type such as clients.created (no wildcards)" })
    .optional()
    .meta({ description: `Default ${TEST_EVENT_TYPE}. A tracked table's type sends a sample row of that table.` }),
  data: z.unknown().check(storableJson).optional().meta({
    description:
      "The event's data; default a sample for the event type. Numbers are sent with the digits given, those beyond 2^53 " +
      "or with more than 15 significant digits too, as the webhook's big_numbers setting says.",
  }),
});

export type TestSendOptions = z.input<typeof testSendSchema>;

export const testResultSchema = z
  .object({
    delivery_id: z.uuid(),
    ok: z.boolean().meta({ description: "The receiver answered 2xx in time." }),
    status_code: z.number().int().nullable(),
    duration_ms: z.number().int(),
    error: z.string().nullable(),
    response_excerpt: z.string().nullable().meta({ description: `The first ${RESPONSE_EXCERPT_CHARS} characters of the response body.` }),
  })
  .meta({ id: "TestResult" });

export type TestResult = z.output<typeof testResultSchema>;

interface ColumnInfo {
  name: string;
  type: string;
  category: string;
}

function sampleValue(c: ColumnInfo, now: Date): unknown {
  switch (c.type) {
    case "uuid":
      return "00000000-0000-0000-0000-000000000000";
    case "json":
    case "jsonb":
      return {};
    case "date":
      return now.toISOString().slice(0, 10);
    case "time":
    case "timetz":
      return "12:00:00";
  }
  switch (c.category) {
    case "N":
      return 1;
    case "B":
      return true;
    case "S":
      return "example";
    case "D":
      return now.toISOString();
    case "A":
      return [];
    default:
      return null;
  }
}

/**
 * The data of a sample event: for a tracked table's type, a made-up row with that table's
 * (non-excluded) columns; for anything else, a short message.
 */
async function sampleData(conn: Connection, type: string, webhook: WebhookView): Promise<unknown> {
  const [table] = await conn.sql<{ table: string; tenant_column: string | null; columns: ColumnInfo[] | null }[]>`
    select t.table_name::text as table, t.tenant_column,
           (select json_agg(json_build_object('name', a.attname, 'type', ty.typname, 'category', ty.typcategory) order by a.attnum)
              from pg_attribute a join pg_type ty on ty.oid = a.atttypid
             where a.attrelid = t.table_name and a.attnum > 0 and not a.attisdropped
               and not (a.attname::text = any(t.excluded_columns))) as columns
      from webhooks.tracked_tables t
     where ${type} = any(array(
             select t.event_prefix || '.' || case o when 'insert' then 'created' when 'update' then 'updated' else 'deleted' end
               from unnest(t.operations) o))
     order by t.table_name::text
     limit 1`;
  const now = new Date();
  if (!table) {
    return { message: "test event from pg-webhooks", webhook_id: webhook.id, sent_at: now.toISOString() };
  }
  const row: Record<string, unknown> = {};
  for (const c of table.columns ?? []) {
    row[c.name] = c.name === table.tenant_column && webhook.tenant !== null ? webhook.tenant : sampleValue(c, now);
  }
  return row;
}

/**
 * Sends one delivery now through the dispatcher's own claim, send and record steps: sent even
 * to a disabled webhook or behind an open circuit, and never retried. It holds a time lease,
 * not a dispatcher's; a database outage while recording is the caller's error.
 */
async function sendAndRecord(ctx: DeliverContext, deliveryId: string): Promise<void> {
  const attempt: AttemptOptions = { retry: false, force: true };
  const breaker = ctx.breaker ?? DEFAULT_BREAKER;
  const c = await ctx.conn.sql.begin((tx) => claim(tx, [deliveryId], null, attempt, breaker));
  const results = await Promise.all(c.send.map((d) => send(ctx, d)));
  if (results.length === 0) return;
  const options = { owner: null, attempt, policyOf: policyReader(ctx.logger), breaker };
  await storeResults(ctx, { results, park: [], release: [] }, options, (e) => Promise.reject(e));
}

/** Sends a test event now and reports the receiver's answer; the delivery is kept like any other. */
export async function sendTest(ctx: DeliverContext, scope: Scope, webhookId: string, opts: TestSendOptions = {}): Promise<TestResult> {
  const { conn } = ctx;
  const webhook = await getWebhook(conn, scope, webhookId);
  const input = parseInput(testSendSchema, opts);
  const type = input.event_type ?? TEST_EVENT_TYPE;
  const data = input.data !== undefined ? input.data : await sampleData(conn, type, webhook);

  const deliveryId = await conn.sql.begin(async (tx) => {
    // dispatched_at is set so fanout never offers this event to other webhooks.
    const [event] = await tx<{ id: string; event_id: string }[]>`
      insert into webhooks.outbox (type, tenant, data, dispatched_at)
      values (${type}, ${webhook.tenant}, ${stringifyExact(data, "number", true)}::text::jsonb, now())
      returning id, event_id`;
    if (!event) throw new Error("insert into webhooks.outbox returned no row");
    const [delivery] = await tx<{ id: string }[]>`
      insert into webhooks.deliveries (subscription_id, outbox_id, event_id, event_type, tenant)
      values (${webhook.id}, ${event.id}, ${event.event_id}, ${type}, ${webhook.tenant})
      returning id`;
    if (!delivery) throw new Error("insert into webhooks.deliveries returned no row");
    return delivery.id;
  });

  await sendAndRecord(ctx, deliveryId);

  const [r] = await conn.sql<
    { status: DeliveryStatus; response_status: number | null; duration_ms: number | null; error: string | null; response_body: string | null }[]
  >`
    select d.status, a.response_status, a.duration_ms, a.error, a.response_body
      from webhooks.deliveries d
      left join lateral (
        select * from webhooks.attempts where delivery_id = d.id order by attempt_number desc limit 1
      ) a on true
     where d.id = ${deliveryId}`;
  if (!r || r.duration_ms === null) throw new Error(`test delivery ${deliveryId} was not attempted`);
  return {
    delivery_id: deliveryId,
    ok: r.status === "succeeded",
    status_code: r.response_status,
    duration_ms: r.duration_ms,
    error: r.error,
    response_excerpt: r.response_body === null ? null : r.response_body.slice(0, RESPONSE_EXCERPT_CHARS),
  };
}
