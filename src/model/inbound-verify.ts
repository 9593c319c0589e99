// How an inbound request is checked, per scheme, over the exact bytes received: pure functions
// of (source, headers, raw body, now). Every comparison is constant-time against each secret
// (two during rotation); timestamps must lie within the source's tolerance.
import { createHmac, createHash, timingSafeEqual } from "node:crypto";
import { Webhook } from "standardwebhooks";
import type { InboundScheme, HmacOptions } from "./inbound";

/** What verification needs of a source. */
export interface VerifiableSource {
  verify: InboundScheme;
  secrets: string[];
  hmac: HmacOptions | null;
  key_header: string | null;
  tolerance_s: number;
}

/** Request headers, names lower-cased, repeated headers joined with ", ". */
export type InboundHeaders = Record<string, string>;

export type Verdict = { ok: true } | { ok: false; reason: string };

const OK: Verdict = { ok: true };
const fail = (reason: string): Verdict => ({ ok: false, reason });

export const DEFAULT_KEY_HEADER = "x-api-key";

/**
 * Equal in constant time whatever the lengths: both sides are hashed first, so neither the
 * position of the first difference nor the length of a key leaks through timing.
 */
export function safeEqual(a: Buffer | string, b: Buffer | string): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** True when any candidate equals any expected value; every pair is compared (no early exit). */
function anyEqual(candidates: string[], expected: string[]): boolean {
  let found = false;
  for (const c of candidates) for (const e of expected) found = safeEqual(c, e) || found;
  return found;
}

const hmac = (algorithm: string, key: string | Buffer, parts: (string | Buffer)[]) => {
  const h = createHmac(algorithm, key);
  for (const p of parts) h.update(p);
  return h.digest();
};

/** Seconds since the epoch, as a sender's timestamp header carries them; null when not a number. */
function unixSeconds(text: string | undefined): number | null {
  if (text === undefined || !/^\s*\d{1,12}\s*$/.test(text)) return null;
  return Number(text);
}

function checkTimestamp(ts: number | null, now: Date, tolerance: number, what: string): Verdict {
  if (ts === null) return fail(`${what}: missing or not a number of seconds`);
  const skew = Math.floor(now.getTime() / 1000) - ts;
  if (skew > tolerance) return fail(`${what}: ${skew} s old, more than the tolerance of ${tolerance} s`);
  if (-skew > tolerance) return fail(`${what}: ${-skew} s in the future, more than the tolerance of ${tolerance} s`);
  return OK;
}

function verifyStandard(src: VerifiableSource, h: InboundHeaders, raw: Buffer, now: Date): Verdict {
  const id = h["webhook-id"];
  const signature = h["webhook-signature"];
  const tsText = h["webhook-timestamp"];
  if (!id || !signature || !tsText) return fail("missing webhook-id, webhook-timestamp or webhook-signature");
  const ts = unixSeconds(tsText);
  const window = checkTimestamp(ts, now, src.tolerance_s, "webhook-timestamp");
  if (!window.ok || ts === null) return window;
  const given = signature.split(" ").flatMap((s) => (s.startsWith("v1,") ? [s.slice(3)] : []));
  if (given.length === 0) return fail("webhook-signature: no v1 signature");
  // The library's own signer computes what a correct signature is (over the raw bytes); the
  // window above is the source's tolerance, not the library's fixed 5 minutes.
  const expected: string[] = [];
  for (const secret of src.secrets) {
    try {
      expected.push(new Webhook(secret).sign(id, new Date(ts * 1000), raw).slice(3));
    } catch {
      // a secret the library cannot read matches nothing
    }
  }
  return anyEqual(given, expected) ? OK : fail("webhook-signature: no signature matches a secret of this source");
}

function verifyStripe(src: VerifiableSource, h: InboundHeaders, raw: Buffer, now: Date): Verdict {
  const header = h["stripe-signature"];
  if (!header) return fail("missing Stripe-Signature");
  let t: string | undefined;
  const v1: string[] = [];
  for (const part of header.split(",")) {
    const i = part.indexOf("=");
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === "t") t = v;
    else if (k === "v1") v1.push(v.toLowerCase());
  }
  const ts = unixSeconds(t);
  const window = checkTimestamp(ts, now, src.tolerance_s, "Stripe-Signature t");
  if (!window.ok || t === undefined) return window;
  if (v1.length === 0) return fail("Stripe-Signature: no v1 signature");
  // Stripe signs "<t>.<body>" with the whole whsec_… string as the key.
  const expected = src.secrets.map((s) => hmac("sha256", s, [`${t}.`, raw]).toString("hex"));
  return anyEqual(v1, expected) ? OK : fail("Stripe-Signature: no v1 signature matches a secret of this source");
}

function verifyGithub(src: VerifiableSource, h: InboundHeaders, raw: Buffer): Verdict {
  const header = h["x-hub-signature-256"];
  if (!header?.startsWith("sha256=")) return fail("missing X-Hub-Signature-256: sha256=<hex>");
  const expected = src.secrets.map((s) => `sha256=${hmac("sha256", s, [raw]).toString("hex")}`);
  return anyEqual([header.trim().toLowerCase()], expected) ? OK : fail("X-Hub-Signature-256 does not match a secret of this source");
}

function verifyShopify(src: VerifiableSource, h: InboundHeaders, raw: Buffer): Verdict {
  const header = h["x-shopify-hmac-sha256"];
  if (!header) return fail("missing X-Shopify-Hmac-Sha256");
  const expected = src.secrets.map((s) => hmac("sha256", s, [raw]).toString("base64"));
  return anyEqual([header.trim()], expected) ? OK : fail("X-Shopify-Hmac-Sha256 does not match a secret of this source");
}

function verifySlack(src: VerifiableSource, h: InboundHeaders, raw: Buffer, now: Date): Verdict {
  const signature = h["x-slack-signature"];
  const tsText = h["x-slack-request-timestamp"];
  if (!signature || !tsText) return fail("missing X-Slack-Signature or X-Slack-Request-Timestamp");
  const window = checkTimestamp(unixSeconds(tsText), now, src.tolerance_s, "X-Slack-Request-Timestamp");
  if (!window.ok) return window;
  const expected = src.secrets.map((s) => `v0=${hmac("sha256", s, [`v0:${tsText.trim()}:`, raw]).toString("hex")}`);
  return anyEqual([signature.trim().toLowerCase()], expected) ? OK : fail("X-Slack-Signature does not match a secret of this source");
}

function verifyHmac(src: VerifiableSource, h: InboundHeaders, raw: Buffer, now: Date): Verdict {
  const o = src.hmac;
  if (o === null) return fail("the source has no hmac options");
  const header = h[o.header.toLowerCase()];
  if (!header) return fail(`missing ${o.header}`);
  const prefix = o.prefix ?? "";
  if (!header.startsWith(prefix)) return fail(`${o.header}: expected it to start with ${JSON.stringify(prefix)}`);
  const given = header.slice(prefix.length).trim();
  const parts: (string | Buffer)[] = [raw];
  if (o.signed === "timestamp.body") {
    const tsHeader = (o.timestamp_header ?? "").toLowerCase();
    const tsText = h[tsHeader];
    const window = checkTimestamp(unixSeconds(tsText), now, src.tolerance_s, o.timestamp_header ?? "timestamp");
    if (!window.ok || tsText === undefined) return window;
    parts.unshift(`${tsText.trim()}.`);
  }
  const encoding = o.encoding ?? "hex";
  const expected = src.secrets.map((s) => hmac(o.algorithm ?? "sha256", s, parts).toString(encoding));
  const candidate = encoding === "hex" ? given.toLowerCase() : given;
  return anyEqual([candidate], expected) ? OK : fail(`${o.header} does not match a secret of this source`);
}

function verifyApiKey(src: VerifiableSource, h: InboundHeaders): Verdict {
  const name = (src.key_header ?? DEFAULT_KEY_HEADER).toLowerCase();
  const key = h[name];
  if (key === undefined || key === "") return fail(`missing ${name}`);
  return anyEqual([key], src.secrets) ? OK : fail(`${name} is not a key of this source`);
}

function verifyBasic(src: VerifiableSource, h: InboundHeaders): Verdict {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h.authorization ?? "");
  if (!m?.[1]) return fail("missing Authorization: Basic <base64 user:password>");
  const pair = Buffer.from(m[1], "base64").toString("latin1");
  return anyEqual([pair], src.secrets) ? OK : fail("Authorization: user and password do not match this source");
}

/** Whether the request is authentic for the source. The reason names no secret. */
export function verifyRequest(src: VerifiableSource, headers: InboundHeaders, raw: Buffer, now: Date): Verdict {
  if (src.verify !== "none" && src.secrets.length === 0) return fail("the source has no secret");
  switch (src.verify) {
    case "standard":
      return verifyStandard(src, headers, raw, now);
    case "stripe":
      return verifyStripe(src, headers, raw, now);
    case "github":
      return verifyGithub(src, headers, raw);
    case "shopify":
      return verifyShopify(src, headers, raw);
    case "slack":
      return verifySlack(src, headers, raw, now);
    case "hmac":
      return verifyHmac(src, headers, raw, now);
    case "api_key":
      return verifyApiKey(src, headers);
    case "basic":
      return verifyBasic(src, headers);
    case "none":
      return OK;
  }
}
