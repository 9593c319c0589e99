// ed25519 (Standard Webhooks v1a) signatures as receivers see them: a real receiver verifies
// every request with tweetnacl (an ed25519 implementation independent of node:crypto) holding
// only the public key; rotations carry both signatures; a retry signs the same bytes; the
// private key shows nowhere unless revealed on purpose.
import nacl from "tweetnacl";
import type { IncomingHttpHeaders } from "node:http";
import { publicKeyOf, signatureHeaders } from "../src/delivery/sign";
import { rotateSecret } from "../src/services/webhooks";
import { ADMIN } from "../src/services/scope";
import { startApi, type Api } from "./helpers/api";
import { signIn } from "./helpers/admin";
import { emptyWebhookTables } from "./helpers/db";
import { startReceiver, type Receiver, type ReceivedRequest } from "./helpers/receiver";
import { runDispatcher, settled, waitUntil, type RunningDispatcher } from "./helpers/pipeline";

let api: Api;
let dispatcher: RunningDispatcher;
const receivers: Receiver[] = [];

beforeAll(async () => {
  api = await startApi();
  dispatcher = await runDispatcher(api.db.url);
});
afterAll(async () => {
  await dispatcher?.stop();
  for (const r of receivers) await r.close();
  await api?.close();
});
beforeEach(async () => {
  await emptyWebhookTables(api.db.sql);
});

const header = (h: IncomingHttpHeaders, name: string) => String(h[name] ?? "");

/** A Standard Webhooks v1a check with tweetnacl, holding one public key (whpk_…). */
function verifiesWith(publicKey: string, req: { headers: IncomingHttpHeaders; body: string }): boolean {
  if (!publicKey.startsWith("whpk_")) return false;
  const key = new Uint8Array(Buffer.from(publicKey.slice(5), "base64"));
  const signed = new Uint8Array(Buffer.from(`${header(req.headers, "webhook-id")}.${header(req.headers, "webhook-timestamp")}.${req.body}`, "utf8"));
  return header(req.headers, "webhook-signature")
    .split(" ")
    .filter((s) => s.startsWith("v1a,"))
    .some((s) => nacl.sign.detached.verify(signed, new Uint8Array(Buffer.from(s.slice(4), "base64")), key));
}

/** A receiver holding `key()` that answers 401 to anything it cannot verify. */
async function holder(key: () => string, firstStatus?: number): Promise<Receiver> {
  const rx = await startReceiver((req: ReceivedRequest, i: number) => {
    if (i === 0 && firstStatus !== undefined) return { status: firstStatus };
    return verifiesWith(key(), req) ? { status: 200 } : { status: 401, body: "bad signature" };
  });
  receivers.push(rx);
  return rx;
}

interface Created {
  id: string;
  secret: string;
  public_key: string;
}

async function createEd25519(url: string, extra: Record<string, unknown> = {}): Promise<Created> {
  const res = await api.call("POST", "/v1/webhooks", {
    body: { url, events: ["sig.*"], signature: { scheme: "ed25519" }, retry: { max_attempts: 2, strategy: "schedule", delays_ms: [200] }, ...extra },
  });
  expect(res.statusCode).toBe(201);
  return res.json() as Created;
}

async function emit(n: number): Promise<void> {
  await api.db.sql`select webhooks.emit('sig.tick', ${api.db.sql.json({ n, big: "12345678901234567890", text: "line\r\nnext \u2028 é" })})`;
}

describe("ed25519 keys", () => {
  it("derives the public key tweetnacl derives, from the 32-byte seed and from libsodium's 64-byte secret key", () => {
    const pair = nacl.sign.keyPair();
    const seed = Buffer.from(pair.secretKey.slice(0, 32)).toString("base64");
    const full = Buffer.from(pair.secretKey).toString("base64");
    const expected = "whpk_" + Buffer.from(pair.publicKey).toString("base64");
    expect(publicKeyOf("whsk_" + seed)).toBe(expected);
    expect(publicKeyOf("whsk_" + full)).toBe(expected);
    // A 64-byte key whose public half does not belong to its seed is no key.
    const forged = Buffer.from(pair.secretKey);
    forged[40] = (forged[40] ?? 0) ^ 1;
    expect(publicKeyOf("whsk_" + forged.toString("base64"))).toBeNull();
    expect(publicKeyOf("whsec_" + seed)).toBeNull();
  });

  it("signs v1a over id.timestamp.body so that tweetnacl verifies it, and a changed body does not", () => {
    const pair = nacl.sign.keyPair();
    const secret = "whsk_" + Buffer.from(pair.secretKey.slice(0, 32)).toString("base64");
    const body = '{"n":"9007199254740993","s":"\\ud800 x"}';
    const headers = signatureHeaders({ scheme: "ed25519", secret, id: "msg_1", timestamp: 1700000000, body });
    expect(headers["webhook-signature"]).toMatch(/^v1a,[A-Za-z0-9+/]{86}==$/);
    const publicKey = publicKeyOf(secret) ?? "";
    expect(verifiesWith(publicKey, { headers, body })).toBe(true);
    expect(verifiesWith(publicKey, { headers, body: body.replace("93", "92") })).toBe(false);
    expect(verifiesWith(publicKey, { headers: { ...headers, "webhook-timestamp": "1700000001" }, body })).toBe(false);
  });
});

describe("ed25519 webhooks through the API and a running dispatcher", () => {
  it("generates a key pair at create, shows the public key, and a receiver holding only it verifies every request", async () => {
    let publicKey = "";
    const rx = await holder(() => publicKey);
    const w = await createEd25519(`${rx.url}/hook`);
    expect(w.secret).toMatch(/^whsk_/);
    expect(w.public_key).toMatch(/^whpk_[A-Za-z0-9+/]{43}=$/);
    expect(w.public_key).toBe(publicKeyOf(w.secret));
    publicKey = w.public_key;

    await emit(1);
    await emit(2);
    expect(await settled(api.db.sql, 2)).toEqual({ succeeded: 2 });
    for (const req of rx.requests) {
      expect(verifiesWith(publicKey, req)).toBe(true);
      // A body changed on the way fails.
      expect(verifiesWith(publicKey, { ...req, body: req.body.replace('"n":', '"n" :') })).toBe(false);
    }
  });

  it("keeps the private key out of views, listings, attempt logs and pages; shows it only when revealed", async () => {
    const rx = await holder(() => "");
    const w = await createEd25519(`${rx.url}/hook`);
    await emit(1);
    await settled(api.db.sql, 1);
    const seed = w.secret.slice(5);
    const places = [
      (await api.call("GET", `/v1/webhooks/${w.id}`)).body,
      (await api.call("GET", "/v1/webhooks")).body,
      (await api.call("GET", `/v1/webhooks/${w.id}/deliveries`)).body,
      JSON.stringify(await api.db.sql`select request_headers, request_body, response_body from webhooks.attempts`),
    ];
    const view = JSON.parse(places[0]!) as { public_key: string; signature_scheme: string };
    expect(view.signature_scheme).toBe("ed25519");
    expect(view.public_key).toBe(w.public_key);
    const admin = await signIn(api, api.adminKey);
    const page = await admin.get(`/admin/webhooks/${w.id}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(w.public_key);
    expect(page.body).toContain("v1a,");
    places.push(page.body);
    for (const text of places) {
      expect(text).not.toContain(w.secret);
      expect(text).not.toContain(seed);
    }
    expect((await api.call("GET", `/v1/webhooks/${w.id}/secret`)).json()).toEqual({ secret: w.secret });
  });

  it("sends both signatures during a rotation: receivers holding the old or the new public key verify, then only the new", async () => {
    const keys = { old: "", neu: "" };
    const oldRx = await holder(() => keys.old);
    const newRx = await holder(() => keys.neu);
    const a = await createEd25519(`${oldRx.url}/hook`);
    const b = await createEd25519(`${newRx.url}/hook`, { secret: a.secret });
    expect(b.public_key).toBe(a.public_key);
    keys.old = a.public_key;
    const ra = await rotateSecret(api.db, ADMIN, a.id, { grace_ms: 3_600_000 });
    const rb = await rotateSecret(api.db, ADMIN, b.id, { grace_ms: 3_600_000 });
    expect(rb.public_key).toMatch(/^whpk_/);
    expect(rb.public_key).not.toBe(a.public_key);
    expect(ra.receivers_see).toMatch(/two v1a signatures/);
    keys.neu = rb.public_key ?? "";
    const during = (await api.call("GET", `/v1/webhooks/${b.id}`)).json() as { public_key: string; previous_public_key: string };
    expect(during).toMatchObject({ public_key: rb.public_key, previous_public_key: a.public_key });

    await emit(1);
    expect(await settled(api.db.sql, 2)).toEqual({ succeeded: 2 });
    expect(header(oldRx.requests[0]!.headers, "webhook-signature").split(" ")).toHaveLength(2);

    await api.db.sql`update webhooks.subscriptions set previous_secret_expires_at = now() - interval '1 second'`;
    await emit(2);
    await settled(api.db.sql, 4);
    const statuses = await api.db.sql<{ subscription_id: string; status: string }[]>`
      select d.subscription_id, d.status from webhooks.deliveries d join webhooks.outbox o on o.id = d.outbox_id where o.data->>'n' = '2'`;
    expect(Object.fromEntries(statuses.map((s) => [s.subscription_id, s.status]))).toEqual({ [a.id]: "failed", [b.id]: "succeeded" });
    expect(header(newRx.requests.at(-1)!.headers, "webhook-signature").split(" ")).toHaveLength(1);
  });

  it("signs a retry over the same body bytes, and both attempts verify", async () => {
    let publicKey = "";
    const rx = await holder(() => publicKey, 503);
    const w = await createEd25519(`${rx.url}/hook`);
    publicKey = w.public_key;
    await emit(1);
    await waitUntil(async () => rx.requests.length >= 2, 20_000, "the retry");
    await settled(api.db.sql, 1);
    const [first, second] = rx.requests;
    expect(second!.body).toBe(first!.body);
    expect(header(second!.headers, "webhook-id")).toBe(header(first!.headers, "webhook-id"));
    expect(verifiesWith(publicKey, first!)).toBe(true);
    expect(verifiesWith(publicKey, second!)).toBe(true);
  });

  it("refuses a secret that is no ed25519 signing key (400, nothing written), and makes a key pair when a webhook switches to ed25519", async () => {
    const before = await api.db.sql`select count(*)::int as n from webhooks.subscriptions`;
    for (const secret of ["whsec_" + Buffer.alloc(24, 1).toString("base64"), "whsk_" + Buffer.alloc(31, 1).toString("base64"), "whsk_not base64!"]) {
      const res = await api.call("POST", "/v1/webhooks", { body: { url: "http://127.0.0.1:9/x", events: ["*"], signature: { scheme: "ed25519" }, secret } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toMatch(/^secret: the ed25519 scheme needs a signing key/);
    }
    expect(await api.db.sql`select count(*)::int as n from webhooks.subscriptions`).toEqual(before);

    const created = await api.call("POST", "/v1/webhooks", { body: { url: "http://127.0.0.1:9/x", events: ["*"] } });
    const id = (created.json() as { id: string }).id;
    const patched = await api.call("PATCH", `/v1/webhooks/${id}`, { body: { signature: { scheme: "ed25519" } } });
    expect(patched.statusCode).toBe(200);
    const view = patched.json() as { public_key: string };
    const { secret } = (await api.call("GET", `/v1/webhooks/${id}/secret`)).json() as { secret: string };
    expect(secret).toMatch(/^whsk_/);
    expect(view.public_key).toBe(publicKeyOf(secret));
  });
});
