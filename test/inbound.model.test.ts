// The pure parts of receiving, table-driven: verification per scheme at the edges (clock skew
// both ways, rotation, lengths, hostile header values), dedupe keys, event names and tenants.
import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { dedupeKey, eventName, parseBody, resolveTenant, storedHeaders } from "../src/model/inbound";
import { safeEqual, verifyRequest, type VerifiableSource } from "../src/model/inbound-verify";

const NOW = new Date("2026-12-03T12:00:00Z");
const T = Math.floor(NOW.getTime() / 1000);
const BODY = Buffer.from('{"id":"evt_1","type":"x.y"}');
const hex = (k: string, ...parts: (string | Buffer)[]) => parts.reduce((h, p) => h.update(p), createHmac("sha256", k)).digest("hex");

const src = (verify: VerifiableSource["verify"], secrets: string[], extra: Partial<VerifiableSource> = {}): VerifiableSource => ({
  verify,
  secrets,
  hmac: null,
  key_header: null,
  tolerance_s: 300,
  ...extra,
});

describe("verifyRequest", () => {
  const stripeSig = (t: number, key = "whsec_k") => `t=${t},v1=${hex(key, `${t}.`, BODY)}`;
  const cases: [string, VerifiableSource, Record<string, string>, boolean][] = [
    ["stripe now", src("stripe", ["whsec_k"]), { "stripe-signature": stripeSig(T) }, true],
    ["stripe 300 s old (the edge)", src("stripe", ["whsec_k"]), { "stripe-signature": stripeSig(T - 300) }, true],
    ["stripe 301 s old", src("stripe", ["whsec_k"]), { "stripe-signature": stripeSig(T - 301) }, false],
    ["stripe 301 s in the future", src("stripe", ["whsec_k"]), { "stripe-signature": stripeSig(T + 301) }, false],
    ["stripe tolerance 3600", src("stripe", ["whsec_k"], { tolerance_s: 3600 }), { "stripe-signature": stripeSig(T - 3000) }, true],
    ["stripe the old secret of two", src("stripe", ["whsec_new", "whsec_k"]), { "stripe-signature": stripeSig(T) }, true],
    ["stripe t not a number", src("stripe", ["whsec_k"]), { "stripe-signature": `t=abc,v1=${hex("whsec_k", "abc.", BODY)}` }, false],
    ["stripe no v1", src("stripe", ["whsec_k"]), { "stripe-signature": `t=${T}` }, false],
    ["stripe a short v1", src("stripe", ["whsec_k"]), { "stripe-signature": `t=${T},v1=ab` }, false],
    ["github upper-case hex", src("github", ["k"]), { "x-hub-signature-256": `sha256=${hex("k", BODY).toUpperCase()}` }, true],
    ["github without sha256=", src("github", ["k"]), { "x-hub-signature-256": hex("k", BODY) }, false],
    ["api_key in a custom header", src("api_key", ["key-1"], { key_header: "X-Token" }), { "x-token": "key-1" }, true],
    ["api_key a prefix of the key", src("api_key", ["key-123"]), { "x-api-key": "key-12" }, false],
    ["api_key longer than the key", src("api_key", ["key-123"]), { "x-api-key": "key-1234" }, false],
    ["api_key empty", src("api_key", ["key-123"]), { "x-api-key": "" }, false],
    ["api_key Latin-1 bytes", src("api_key", ["key-123"]), { "x-api-key": "key-12\u00ff" }, false],
    ["basic right", src("basic", ["u:p"]), { authorization: `Basic ${Buffer.from("u:p").toString("base64")}` }, true],
    ["basic a bearer token", src("basic", ["u:p"]), { authorization: "Bearer u:p" }, false],
    ["no secret configured", src("api_key", []), { "x-api-key": "" }, false],
    ["none", src("none", []), {}, true],
    [
      "hmac hex with a prefix",
      src("hmac", ["k"], { hmac: { header: "X-Sig", prefix: "sha256=" } }),
      { "x-sig": `sha256=${hex("k", BODY)}` },
      true,
    ],
    [
      "hmac sha1",
      src("hmac", ["k"], { hmac: { header: "X-Sig", algorithm: "sha1" } }),
      { "x-sig": createHmac("sha1", "k").update(BODY).digest("hex") },
      true,
    ],
    [
      "hmac timestamp missing",
      src("hmac", ["k"], { hmac: { header: "X-Sig", signed: "timestamp.body", timestamp_header: "X-Ts" } }),
      { "x-sig": hex("k", `${T}.`, BODY) },
      false,
    ],
  ];
  it.each(cases)("%s", (_name, source, headers, ok) => {
    expect(verifyRequest(source, headers, BODY, NOW).ok).toBe(ok);
  });

  it("standard: the library's signature, each of two secrets, and the window both ways", () => {
    const a = `whsec_${Buffer.alloc(24, 1).toString("base64")}`;
    const b = `whsec_${Buffer.alloc(24, 2).toString("base64")}`;
    const h = (secret: string, ts: number) => ({
      "webhook-id": "msg_1",
      "webhook-timestamp": String(ts),
      "webhook-signature": new Webhook(secret).sign("msg_1", new Date(ts * 1000), BODY.toString()),
    });
    expect(verifyRequest(src("standard", [a, b]), h(b, T), BODY, NOW).ok).toBe(true);
    expect(verifyRequest(src("standard", [a]), h(b, T), BODY, NOW).ok).toBe(false);
    expect(verifyRequest(src("standard", [a]), h(a, T + 299), BODY, NOW).ok).toBe(true);
    expect(verifyRequest(src("standard", [a]), h(a, T + 301), BODY, NOW).ok).toBe(false);
    expect(verifyRequest(src("standard", [a]), { ...h(a, T), "webhook-id": "msg_2" }, BODY, NOW).ok).toBe(false);
  });

  it("names what failed and never a secret", () => {
    const r = verifyRequest(src("api_key", ["super-secret-key"]), { "x-api-key": "wrong" }, BODY, NOW);
    expect(r).toEqual({ ok: false, reason: "x-api-key is not a key of this source" });
    expect(JSON.stringify(r)).not.toContain("super-secret");
  });

  it("safeEqual compares whatever the lengths", () => {
    expect(safeEqual("a", "a")).toBe(true);
    expect(safeEqual("a", "ab")).toBe(false);
    expect(safeEqual("", "")).toBe(true);
  });
});

describe("what a request becomes", () => {
  it("dedupe keys: headers, body paths, exact big numbers, hashed when text cannot hold them", () => {
    const body = parseBody(Buffer.from('{"id":9223372036854775809,"a":{"b":"x\\u0000y"},"long":"' + "z".repeat(300) + '"}')).value;
    expect(dedupeKey("header:X-Id", { "x-id": "h1" }, body)).toBe("h1");
    expect(dedupeKey("json:id", {}, body)).toBe("9223372036854775809");
    expect(dedupeKey("json:a.b", {}, body)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(dedupeKey("json:long", {}, body)).toMatch(/^sha256:/);
    expect(dedupeKey("json:missing", {}, body)).toBeNull();
    expect(dedupeKey("json:a", {}, body)).toBeNull();
    expect(dedupeKey(null, { "x-id": "h1" }, body)).toBeNull();
    expect(dedupeKey("none", { "x-id": "h1" }, body)).toBeNull();
  });

  it("event names: the path first, then the sender's own", () => {
    expect(eventName("stripe", "from.path", {}, { type: "invoice.paid" })).toBe("from.path");
    expect(eventName("stripe", undefined, {}, { type: "invoice.paid" })).toBe("invoice.paid");
    expect(eventName("github", undefined, { "x-github-event": "push" }, { type: "nope" })).toBe("push");
    expect(eventName("shopify", undefined, { "x-shopify-topic": "orders/create" }, {})).toBe("orders/create");
    expect(eventName("slack", undefined, {}, { type: "event_callback", event: { type: "app_mention" } })).toBe("app_mention");
    expect(eventName("api_key", undefined, {}, { event: "deal.won" })).toBe("deal.won");
    expect(eventName("api_key", "a\u0000b", {}, {})).toBeNull();
    expect(eventName("none", undefined, {}, undefined)).toBeNull();
  });

  it("tenants: the source's, one of the allowed, or none", () => {
    expect(resolveTenant({ tenant: "acme", allowed_tenants: null }, {})).toEqual({ ok: true, tenant: "acme" });
    expect(resolveTenant({ tenant: "acme", allowed_tenants: null }, { "x-tenant-id": "acme" })).toEqual({ ok: true, tenant: "acme" });
    expect(resolveTenant({ tenant: "acme", allowed_tenants: null }, { "x-tenant-id": "globex" }).ok).toBe(false);
    expect(resolveTenant({ tenant: null, allowed_tenants: ["a", "b"] }, { "x-tenant-id": "b" })).toEqual({ ok: true, tenant: "b" });
    expect(resolveTenant({ tenant: null, allowed_tenants: ["a", "b"] }, { "x-tenant-id": "c" }).ok).toBe(false);
    expect(resolveTenant({ tenant: null, allowed_tenants: ["a"] }, {}).ok).toBe(false);
    expect(resolveTenant({ tenant: null, allowed_tenants: null }, { "x-tenant-id": "z" })).toEqual({ ok: true, tenant: null });
  });

  it("stored headers leave out credentials and the source's key header", () => {
    const h = { authorization: "a", cookie: "c", "proxy-authorization": "p", "x-api-key": "k", "x-token": "t", "x-keep": "v" };
    expect(storedHeaders(h, "X-Token")).toEqual({ "x-keep": "v" });
  });

  it("parses JSON jsonb can hold, and nothing else", () => {
    expect(parseBody(Buffer.from(' {"a": 1} ')).jsonText).toBe(' {"a": 1} ');
    expect(parseBody(Buffer.from('{"a":"\\u0000"}')).jsonText).toBeNull();
    expect(parseBody(Buffer.from('{"a":1e400}')).jsonText).toBeNull();
    expect(parseBody(Buffer.from([0xc3, 0x28])).jsonText).toBeNull();
    expect(parseBody(Buffer.from("")).jsonText).toBeNull();
    expect(parseBody(Buffer.from("a=1&b=2")).jsonText).toBeNull();
  });
});
