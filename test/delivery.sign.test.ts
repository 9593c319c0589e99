// Signing and rendering: what a receiver verifies and parses.
import { createHmac, timingSafeEqual } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { generateSecret, signatureHeaders, signingSecrets } from "../src/delivery/sign";
import { renderBody } from "../src/delivery/render";

const body = JSON.stringify({ id: "evt_1", type: "clients.created", data: { name: "Zoë" } });
const id = "evt_1";
const now = () => Math.floor(Date.now() / 1000);

/** What a receiver's "verify the hex HMAC of the raw body" snippet does. */
function hexMatches(secret: string, rawBody: string, received: string): boolean {
  const expected = Buffer.from(createHmac("sha256", secret).update(rawBody).digest("hex"));
  const got = Buffer.from(received);
  return expected.length === got.length && timingSafeEqual(expected, got);
}

describe("generateSecret", () => {
  it("returns whsec_ + base64 of 24 random bytes, different every time", () => {
    const a = generateSecret();
    const b = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(a.slice("whsec_".length), "base64")).toHaveLength(24);
    expect(a).not.toBe(b);
  });
});

describe("standard signature", () => {
  it("verifies with the standardwebhooks library", () => {
    const secret = generateSecret();
    const headers = signatureHeaders({ scheme: "standard", secret, id, timestamp: now(), body });
    expect(headers["webhook-id"]).toBe(id);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it("does not verify with another secret or a changed body", () => {
    const secret = generateSecret();
    const headers = signatureHeaders({ scheme: "standard", secret, id, timestamp: now(), body });
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow(/No matching signature/);
    expect(() => new Webhook(secret).verify(body.replace("Zoë", "Zoe"), headers)).toThrow(/No matching signature/);
  });

  it("carries new then old signature during rotation, each verifying with its own secret", () => {
    const secret = generateSecret();
    const previousSecret = generateSecret();
    const headers = signatureHeaders({ scheme: "standard", secret, previousSecret, id, timestamp: now(), body });
    const sigs = (headers["webhook-signature"] ?? "").split(" ");
    expect(sigs).toHaveLength(2);
    expect(sigs[0]).toBe(signatureHeaders({ scheme: "standard", secret, id, timestamp: Number(headers["webhook-timestamp"]), body })["webhook-signature"]);
    expect(() => new Webhook(secret).verify(body, headers)).not.toThrow();
    expect(() => new Webhook(previousSecret).verify(body, headers)).not.toThrow();
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow();
  });

  it("uses an unprefixed base64 secret decoded, and any other secret as utf8 bytes", () => {
    const b64 = Buffer.from("0123456789abcdef0123").toString("base64");
    const h1 = signatureHeaders({ scheme: "standard", secret: b64, id, timestamp: now(), body });
    expect(() => new Webhook(b64).verify(body, h1)).not.toThrow();

    const plain = "correct horse battery staple";
    const h2 = signatureHeaders({ scheme: "standard", secret: plain, id, timestamp: now(), body });
    expect(() => new Webhook(Buffer.from(plain, "utf8"), { format: "raw" }).verify(body, h2)).not.toThrow();
  });

  it("refuses to sign with an empty secret", () => {
    expect(() => signatureHeaders({ scheme: "standard", secret: "whsec_", id, timestamp: now(), body })).toThrow(/empty/);
  });
});

describe("hex signature", () => {
  it("is the hex HMAC of the raw body keyed by the whole secret string, plus id and timestamp", () => {
    const secret = "whsec_notDecodedForHex";
    const ts = now();
    const headers = signatureHeaders({ scheme: "hex", secret, previousSecret: "old", id, timestamp: ts, body });
    expect(Object.keys(headers).sort()).toEqual(["X-Webhook-Signature", "webhook-id", "webhook-timestamp"]);
    expect(headers["webhook-timestamp"]).toBe(String(ts));
    const sig = headers["X-Webhook-Signature"] ?? "";
    expect(sig).toMatch(/^[0-9a-f]{64}$/);
    expect(hexMatches(secret, body, sig)).toBe(true);
    expect(hexMatches("old", body, sig)).toBe(false);
  });
});

describe("sha256 signature", () => {
  it("puts sha256=<hex> in X-Hub-Signature-256 by default", () => {
    const secret = "s3cret";
    const headers = signatureHeaders({ scheme: "sha256", secret, id, timestamp: now(), body });
    const value = headers["X-Hub-Signature-256"] ?? "";
    expect(value.startsWith("sha256=")).toBe(true);
    expect(hexMatches(secret, body, value.slice("sha256=".length))).toBe(true);
    expect(headers["webhook-id"]).toBe(id);
  });

  it("uses the header name it is given", () => {
    const headers = signatureHeaders({ scheme: "sha256", secret: "s", headerName: "X-Signature", id, timestamp: now(), body });
    expect(headers["X-Signature"]).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(headers["X-Hub-Signature-256"]).toBeUndefined();
  });
});

describe("renderBody", () => {
  const base = {
    event_id: "evt_9",
    type: "clients.updated",
    occurred_at: new Date("2024-05-01T12:00:00.123Z"),
    data: JSON.stringify({ id: 1, name: "new" }),
    tenant: "acme",
    big_numbers: "string" as const,
  };

  it("renders id, type, ISO timestamp, data and previous_attributes", () => {
    const parsed: unknown = JSON.parse(renderBody({ ...base, previous_attributes: JSON.stringify({ name: "old" }) }));
    expect(parsed).toEqual({
      id: "evt_9",
      type: "clients.updated",
      timestamp: "2024-05-01T12:00:00.123Z",
      data: { id: 1, name: "new" },
      previous_attributes: { name: "old" },
    });
  });

  it("omits previous_attributes when null and keeps tenant out of the payload", () => {
    const text = renderBody({ ...base, previous_attributes: null });
    expect(Object.keys(JSON.parse(text) as object)).toEqual(["id", "type", "timestamp", "data"]);
    expect(text).not.toContain("acme");
  });
});

describe("signingSecrets: which secrets sign at a given instant during a rotation", () => {
  const at = new Date("2024-05-01T12:00:00Z");
  const before = new Date(at.getTime() - 1);
  const after = new Date(at.getTime() + 1);
  const rotation = { previousSecret: "old", previousSecretExpiresAt: at };
  // [scheme, now, rotation, expected]
  const cases: [string, "standard" | "hex" | "sha256", Date, typeof rotation | { previousSecret: null; previousSecretExpiresAt: null }, object][] = [
    ["standard before the switch: both", "standard", before, rotation, { secret: "new", previousSecret: "old" }],
    ["standard at the switch: new only", "standard", at, rotation, { secret: "new", previousSecret: null }],
    ["hex before the switch: old only", "hex", before, rotation, { secret: "old", previousSecret: null }],
    ["hex at the switch: new only", "hex", at, rotation, { secret: "new", previousSecret: null }],
    ["sha256 before the switch: old only", "sha256", before, rotation, { secret: "old", previousSecret: null }],
    ["sha256 after the switch: new only", "sha256", after, rotation, { secret: "new", previousSecret: null }],
    ["no rotation: new only", "hex", before, { previousSecret: null, previousSecretExpiresAt: null }, { secret: "new", previousSecret: null }],
    ["extreme date +275760: still rotating", "hex", before, { previousSecret: "old", previousSecretExpiresAt: new Date(8.64e15) }, { secret: "old", previousSecret: null }],
  ];
  it.each(cases)("%s", (_name, scheme, when, r, expected) => {
    expect(signingSecrets(scheme, "new", r, when)).toEqual(expected);
  });
});
