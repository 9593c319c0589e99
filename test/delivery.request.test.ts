// Building a subscription's request, and verifying what actually arrives the way receivers do.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { createSender, type Sender } from "../src/delivery/client";
import { renderBody } from "../src/delivery/render";
import { buildRequest, USER_AGENT, type TargetSpec } from "../src/delivery/request";
import { generateSecret } from "../src/delivery/sign";
import { startReceiver, type Receiver } from "./helpers/receiver";

const pkg = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8")) as { version: string };

const target = (over: Partial<TargetSpec> = {}): TargetSpec => ({
  url: "https://hooks.example.com/in",
  method: "POST",
  auth: { type: "none" },
  headers: {},
  secret_headers: [],
  signature_scheme: "standard",
  signature_header: null,
  secret: generateSecret(),
  previous_secret: null,
  previous_secret_expires_at: null,
  timeout_ms: 15000,
  ...over,
});

const event = {
  event_id: "evt_01HZX",
  type: "invoice.paid",
  body: renderBody({
    event_id: "evt_01HZX",
    type: "invoice.paid",
    occurred_at: new Date("2024-05-01T12:00:00Z"),
    data: JSON.stringify({ amount: 4200, note: "naïve ✓" }),
    previous_attributes: null,
    tenant: null,
    big_numbers: "string",
  }),
};

const flat = (h: IncomingHttpHeaders): Record<string, string> =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));

function hexEqual(expectedHex: string, received: string | undefined): boolean {
  const a = Buffer.from(expectedHex);
  const b = Buffer.from(received ?? "");
  return a.length === b.length && timingSafeEqual(a, b);
}

describe("buildRequest", () => {
  it("sends JSON with our user agent, static headers, event and delivery ids", () => {
    const now = new Date("2024-05-01T12:00:05.900Z");
    const { request } = buildRequest(
      target({ method: "PATCH", timeout_ms: 3000, headers: { "X-Tenant": "acme" } }),
      event,
      "dlv_1",
      now,
    );
    expect(USER_AGENT).toBe(`pg-webhooks/${pkg.version}`);
    expect(request).toMatchObject({ url: "https://hooks.example.com/in", method: "PATCH", body: event.body, timeoutMs: 3000 });
    expect(request.headers).toMatchObject({
      "content-type": "application/json",
      "user-agent": USER_AGENT,
      "x-tenant": "acme",
      "x-webhook-event": "invoice.paid",
      "x-webhook-delivery-id": "dlv_1",
      "webhook-id": "evt_01HZX",
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
    });
  });

  it("keeps webhook-id on the event id across retries and deliveries", () => {
    const t = target();
    const first = buildRequest(t, event, "dlv_1", new Date("2024-05-01T12:00:00Z")).request.headers;
    const retry = buildRequest(t, event, "dlv_2", new Date("2024-05-01T12:10:00Z")).request.headers;
    expect(retry["webhook-id"]).toBe(first["webhook-id"]);
    expect(retry["x-webhook-delivery-id"]).not.toBe(first["x-webhook-delivery-id"]);
    expect(retry["webhook-timestamp"]).not.toBe(first["webhook-timestamp"]);
  });

  it("adds bearer, basic and custom-header auth", () => {
    const now = new Date();
    const bearer = buildRequest(target({ auth: { type: "bearer", token: "tok_123" } }), event, "d", now).request.headers;
    expect(bearer.authorization).toBe("Bearer tok_123");
    const basic = buildRequest(target({ auth: { type: "basic", username: "zoë", password: "p:w" } }), event, "d", now).request.headers;
    expect(Buffer.from((basic.authorization ?? "").replace(/^Basic /, ""), "base64").toString("utf8")).toBe("zoë:p:w");
    const custom = buildRequest(target({ auth: { type: "header", name: "X-Api-Key", value: "k_9" } }), event, "d", now).request.headers;
    expect(custom["x-api-key"]).toBe("k_9");
    expect(custom.authorization).toBeUndefined();
  });

  it("signs with the previous secret too only until it expires", () => {
    const now = new Date("2024-05-01T12:00:00Z");
    const sigCount = (expires: Date | null) =>
      (buildRequest(target({ previous_secret: generateSecret(), previous_secret_expires_at: expires }), event, "d", now).request.headers["webhook-signature"] ?? "")
        .split(" ").length;
    expect(sigCount(new Date(now.getTime() + 1000))).toBe(2);
    expect(sigCount(now)).toBe(1);
    expect(sigCount(new Date(now.getTime() - 1000))).toBe(1);
    expect(sigCount(null)).toBe(1);
  });

  it.each([
    ["hex", "x-webhook-signature", ""],
    ["sha256", "x-hub-signature-256", "sha256="],
  ] as const)("%s: signs with the previous secret alone until it expires, then with the new one alone", (scheme, header, prefix) => {
    const now = new Date("2024-05-01T12:00:00Z");
    const hmac = (key: string) => prefix + createHmac("sha256", key).update(event.body, "utf8").digest("hex");
    const sig = (expires: Date | null) =>
      buildRequest(target({ signature_scheme: scheme, secret: "new-secret", previous_secret: "old-secret", previous_secret_expires_at: expires }), event, "d", now)
        .request.headers[header];
    expect(sig(new Date(now.getTime() + 1000))).toBe(hmac("old-secret"));
    expect(sig(now)).toBe(hmac("new-secret"));
    expect(sig(new Date(now.getTime() - 1000))).toBe(hmac("new-secret"));
    expect(sig(null)).toBe(hmac("new-secret"));
  });

  it("masks static headers marked secret and those named like credentials in loggedHeaders, sending them as given", () => {
    const headers = {
      "X-Pin": "p1", "X-Auth": "a1", "X-Session-Id": "s1", "X-Sig": "g1", "Cookie": "c1", "X-Db-Password": "w1",
      "X-Credential": "k1", "X-Plain": "visible", "X-Signal": "visible too",
    };
    const { request, loggedHeaders } = buildRequest(target({ headers, secret_headers: ["x-pin"] }), event, "d", new Date());
    for (const [name, value] of Object.entries(headers)) expect(request.headers[name.toLowerCase()]).toBe(value);
    expect(loggedHeaders).toMatchObject({
      "x-pin": "****", "x-auth": "****", "x-session-id": "****", "x-sig": "****", cookie: "****", "x-db-password": "****",
      "x-credential": "****", "x-plain": "visible", "x-signal": "visible too",
    });
  });

  it("masks every credential and signature in loggedHeaders, and nothing else", () => {
    const secret = generateSecret();
    const previous = generateSecret();
    const cases: [TargetSpec, Record<string, string>][] = [
      [
        target({ secret, previous_secret: previous, previous_secret_expires_at: new Date(Date.now() + 60_000), auth: { type: "bearer", token: "tok_secret" } }),
        { authorization: "Bearer ****", "webhook-signature": "v1,**** v1,****" },
      ],
      [
        target({ secret, auth: { type: "basic", username: "u", password: "pw_secret" } }),
        { authorization: "Basic ****", "webhook-signature": "v1,****" },
      ],
      [
        target({ secret, signature_scheme: "hex", auth: { type: "header", name: "X-Shared-Key", value: "hdr_secret" } }),
        { "x-shared-key": "****", "x-webhook-signature": "****" },
      ],
      [
        target({ secret, signature_scheme: "sha256", signature_header: "X-Sig", headers: { "X-Api-Key": "static_secret", "X-Plain": "visible" } }),
        { "x-sig": "sha256=****", "x-api-key": "****", "x-plain": "visible" },
      ],
    ];
    for (const [t, expectedMasks] of cases) {
      const { request, loggedHeaders } = buildRequest(t, event, "dlv_1", new Date());
      expect(loggedHeaders).toMatchObject(expectedMasks);
      expect(Object.keys(loggedHeaders).sort()).toEqual(Object.keys(request.headers).sort());
      for (const [name, value] of Object.entries(request.headers)) {
        if (!(name in expectedMasks)) expect(loggedHeaders[name]).toBe(value);
      }
      const logged = JSON.stringify(loggedHeaders);
      for (const leak of ["tok_secret", "pw_secret", "hdr_secret", "static_secret", Buffer.from("u:pw_secret").toString("base64")]) {
        expect(logged).not.toContain(leak);
      }
      // No signature value survives either.
      for (const [name, value] of Object.entries(request.headers)) {
        if (/signature|^x-sig$/.test(name)) expect(logged).not.toContain(value.replace(/^(v1,|sha256=)/, "").split(" ")[0]);
      }
    }
  });
});

describe("what a receiver verifies", () => {
  let receiver: Receiver;
  let sender: Sender;

  beforeAll(async () => {
    receiver = await startReceiver();
    sender = createSender({ allowPrivateTargets: true });
  });
  afterAll(async () => {
    await sender.close();
    await receiver.close();
  });

  async function deliver(t: TargetSpec) {
    const before = receiver.requests.length;
    const { request } = buildRequest({ ...t, url: receiver.url + "/hook" }, event, "dlv_e2e", new Date());
    const out = await sender.send(request);
    expect(out.ok).toBe(true);
    const got = (await receiver.waitFor(before + 1))[before];
    if (!got) throw new Error("receiver recorded nothing");
    return got;
  }

  it("standard: verifies with the standardwebhooks library on the raw body", async () => {
    const secret = generateSecret();
    const got = await deliver(target({ secret }));
    expect(got.headers["user-agent"]).toBe(USER_AGENT);
    expect(new Webhook(secret).verify(got.body, flat(got.headers))).toEqual(JSON.parse(event.body));
    expect(() => new Webhook(generateSecret()).verify(got.body, flat(got.headers))).toThrow();
  });

  it("standard during rotation: receivers holding the old or the new secret both verify", async () => {
    const secret = generateSecret();
    const previous = generateSecret();
    const got = await deliver(target({ secret, previous_secret: previous, previous_secret_expires_at: new Date(Date.now() + 3600_000) }));
    expect(() => new Webhook(secret).verify(got.body, flat(got.headers))).not.toThrow();
    expect(() => new Webhook(previous).verify(got.body, flat(got.headers))).not.toThrow();
  });

  it("hex: X-Webhook-Signature is the hex HMAC of the raw body", async () => {
    const secret = "hex-secret-" + generateSecret();
    const got = await deliver(target({ secret, signature_scheme: "hex" }));
    const expected = createHmac("sha256", secret).update(got.body).digest("hex");
    expect(hexEqual(expected, got.headers["x-webhook-signature"] as string | undefined)).toBe(true);
    expect(got.headers["webhook-id"]).toBe(event.event_id);
  });

  it("sha256: the named header carries sha256=<hex HMAC of the raw body>", async () => {
    const secret = "gh-style";
    const got = await deliver(target({ secret, signature_scheme: "sha256", signature_header: "X-Hub-Signature-256" }));
    const expected = "sha256=" + createHmac("sha256", secret).update(got.body).digest("hex");
    expect(hexEqual(expected, got.headers["x-hub-signature-256"] as string | undefined)).toBe(true);
    expect(hexEqual("sha256=" + createHmac("sha256", "other").update(got.body).digest("hex"), got.headers["x-hub-signature-256"] as string | undefined)).toBe(false);
  });
});
