// Secret rotation as receivers see it, through a running dispatcher: for each scheme, what a
// receiver holding only the old secret and one holding only the new one get before and after
// the switch-over, and what a retry after the switch is signed with.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Webhook } from "standardwebhooks";
import { parseWebhookInput, webhookCreateSchema } from "../src/model/webhook";
import { createWebhook, getWebhook, rotateSecret } from "../src/services/webhooks";
import { retryDelivery } from "../src/services/deliveries";
import { ADMIN } from "../src/services/scope";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver, type ReceivedRequest } from "./helpers/receiver";
import { runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";

type Scheme = "standard" | "hex" | "sha256";

let t: TestDatabase;
let dispatcher: RunningDispatcher;
const receivers: Receiver[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  dispatcher = await runDispatcher(t.url);
});
afterAll(async () => {
  await dispatcher?.stop();
  for (const r of receivers) await r.close();
  await t?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(t.sql);
});

function flat(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

const hex = (secret: string, body: string) => createHmac("sha256", secret).update(body, "utf8").digest("hex");
const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** How a receiver copied from the guides checks a request, holding one secret. */
function verifies(scheme: Scheme, secret: string, req: ReceivedRequest): boolean {
  const h = flat(req.headers);
  switch (scheme) {
    case "standard":
      try {
        new Webhook(secret).verify(req.body, h);
        return true;
      } catch {
        return false;
      }
    case "hex":
      return same(h["x-webhook-signature"] ?? "", hex(secret, req.body));
    case "sha256":
      return same(h["x-hub-signature-256"] ?? "", "sha256=" + hex(secret, req.body));
  }
}

/** A real receiver that holds `secret()` and answers 401 to a request it cannot verify. */
async function holder(scheme: Scheme, secret: () => string): Promise<Receiver> {
  const rx = await startReceiver((req) => (verifies(scheme, secret(), req) ? { status: 200 } : { status: 401, body: "bad signature" }));
  receivers.push(rx);
  return rx;
}

/** Two webhooks with one starting secret, rotated alike: one receiver keeps the old secret, the other takes the new. */
async function rotatingPair(scheme: Scheme) {
  const start = scheme === "standard" ? "whsec_" + Buffer.alloc(24, 7).toString("base64") : "hexsecret-0ld";
  const secrets = { old: start, newForNewHolder: "" };
  const oldRx = await holder(scheme, () => secrets.old);
  const newRx = await holder(scheme, () => secrets.newForNewHolder);
  const make = async (rx: Receiver) => {
    const input = parseWebhookInput(webhookCreateSchema, {
      url: `${rx.url}/hook`,
      events: ["rotation.*"],
      signature: { scheme },
      secret: start,
      retry: { max_attempts: 1 },
    });
    return (await createWebhook(t, ADMIN, input, { allowPrivateTargets: true })).webhook.id;
  };
  const oldId = await make(oldRx);
  const newId = await make(newRx);
  const rotatedOld = await rotateSecret(t, ADMIN, oldId, { grace_ms: 3_600_000 });
  const rotatedNew = await rotateSecret(t, ADMIN, newId, { grace_ms: 3_600_000 });
  secrets.newForNewHolder = rotatedNew.secret;
  return { oldRx, newRx, oldId, newId, rotatedOld, rotatedNew };
}

/** Emits the n-th event and waits until both webhooks' deliveries of it end: their statuses by holder. */
async function emitAndSettle(pair: { oldId: string; newId: string }, n: number): Promise<{ old: string; new: string }> {
  const [e] = await t.sql<{ event_id: string }[]>`select webhooks.emit('rotation.tick', ${t.sql.json({ n })}) as event_id`;
  await settled(t.sql, 2 * n);
  const rows = await t.sql<{ subscription_id: string; status: string }[]>`
    select subscription_id, status from webhooks.deliveries where event_id = ${e!.event_id}`;
  const status = (id: string) => rows.find((r) => r.subscription_id === id)?.status ?? "missing";
  return { old: status(pair.oldId), new: status(pair.newId) };
}

/** The clock reaches the switch-over: the previous secret's time is up. */
async function passSwitch(ids: string[]): Promise<void> {
  await t.sql`update webhooks.subscriptions set previous_secret_expires_at = now() - interval '1 second' where id = any(${ids}::uuid[])`;
}

describe("rotate-secret with the standard scheme", () => {
  it("signs with both secrets until the grace ends, then with the new one alone", async () => {
    const pair = await rotatingPair("standard");
    const { oldRx, newRx, oldId, newId, rotatedOld } = pair;
    expect(rotatedOld.previous_secret_expires_at).not.toBeNull();
    expect(rotatedOld.receivers_see).toMatch(/two signatures/);

    expect(await emitAndSettle(pair, 1)).toEqual({ old: "succeeded", new: "succeeded" });
    const during = oldRx.requests[0]!;
    expect(String(during.headers["webhook-signature"]).split(" ")).toHaveLength(2);

    await passSwitch([oldId, newId]);
    expect(await emitAndSettle(pair, 2)).toEqual({ old: "failed", new: "succeeded" });
    expect(String(newRx.requests[1]!.headers["webhook-signature"]).split(" ")).toHaveLength(1);
  });
});

describe.each(["hex", "sha256"] as const)("rotate-secret with the %s scheme", (scheme) => {
  it("keeps signing with the old secret alone until the switch, then with the new one alone", async () => {
    const pair = await rotatingPair(scheme);
    const { oldId, newId, rotatedOld } = pair;
    // The promise the API makes is populated and says what the receivers will see.
    expect(rotatedOld.previous_secret_expires_at).toBeInstanceOf(Date);
    expect(rotatedOld.previous_secret_expires_at!.getTime()).toBeGreaterThan(Date.now() + 3_500_000);
    expect(rotatedOld.receivers_see).toMatch(/old secret alone; from .* on with the new secret alone/);
    const view = await getWebhook(t, ADMIN, oldId);
    expect(view.previous_secret_expires_at).toEqual(rotatedOld.previous_secret_expires_at);
    expect(view.secret_rotation).toBe(rotatedOld.receivers_see);

    expect(await emitAndSettle(pair, 1)).toEqual({ old: "succeeded", new: "failed" });
    await passSwitch([oldId, newId]);
    expect(await emitAndSettle(pair, 2)).toEqual({ old: "failed", new: "succeeded" });
    expect((await getWebhook(t, ADMIN, oldId)).secret_rotation).toBeNull();
  });

  it("signs a retry after the switch with the new secret, over the same body bytes", async () => {
    const pair = await rotatingPair(scheme);
    const { newRx, oldId, newId } = pair;
    expect(await emitAndSettle(pair, 1)).toEqual({ old: "succeeded", new: "failed" });
    await passSwitch([oldId, newId]);

    const [d] = await t.sql<{ id: string }[]>`select id from webhooks.deliveries where subscription_id = ${newId}`;
    expect(await retryDelivery(t, ADMIN, d!.id)).toEqual({ queued: true });
    await waitUntil(async () => {
      const [row] = await t.sql<{ status: string }[]>`select status from webhooks.deliveries where id = ${d!.id}`;
      return row?.status === "succeeded";
    }, 20_000, "the retried delivery to succeed");

    const [first, second] = newRx.requests;
    expect(second!.body).toBe(first!.body);
    const header = scheme === "hex" ? "x-webhook-signature" : "x-hub-signature-256";
    expect(second!.headers[header]).not.toBe(first!.headers[header]);
    const attempts = await t.sql<{ response_status: number; request_body: string }[]>`
      select response_status, coalesce(a.request_body, d.body) as request_body
        from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
       where a.delivery_id = ${d!.id} order by attempt_number`;
    expect(attempts.map((a) => a.response_status)).toEqual([401, 200]);
    expect(attempts[1]!.request_body).toBe(attempts[0]!.request_body);
  });

  it("rotating again during a switch-over keeps the secret receivers hold signing until the new switch", async () => {
    const { oldId } = await rotatingPair(scheme);
    const first = await rotateSecret(t, ADMIN, oldId, { grace_ms: 60_000 });
    const [row] = await t.sql<{ previous_secret: string; secret: string }[]>`
      select previous_secret, secret from webhooks.subscriptions where id = ${oldId}`;
    expect(row!.secret).toBe(first.secret);
    // Still the webhook's starting secret: the one rotated in by rotatingPair never signed a request.
    expect(row!.previous_secret).toBe("hexsecret-0ld");
  });

  it("switches at once with grace 0 and says so", async () => {
    const { oldId, newId } = await rotatingPair(scheme);
    const now = await rotateSecret(t, ADMIN, oldId, { grace_ms: 0 });
    expect(now.previous_secret_expires_at).toBeNull();
    expect(now.receivers_see).toMatch(/from now on/);
    const [w] = await t.sql<{ previous_secret: string | null }[]>`select previous_secret from webhooks.subscriptions where id = ${oldId}`;
    expect(w!.previous_secret).toBeNull();
  });
});
