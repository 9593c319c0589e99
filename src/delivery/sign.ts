// Signing: the Standard Webhooks scheme by default (symmetric v1, or asymmetric v1a with an
// ed25519 key pair), and the two older styles receivers in the field still check (hex HMAC of
// the raw body; `sha256=<hex>` in a header the user names).
import { createHmac, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from "node:crypto";
import type { SignatureScheme } from "../model/enums";

export type { SignatureScheme };

const SECRET_PREFIX = "whsec_";
// Strict base64 (padding included), so a plain password like "hunter2" is not half-decoded.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A fresh Standard Webhooks secret: `whsec_` + base64 of 24 random bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString("base64");
}

const SIGNING_KEY_PREFIX = "whsk_";
const PUBLIC_KEY_PREFIX = "whpk_";
// PKCS#8 DER of an ed25519 private key is this prefix and the 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/**
 * A fresh Standard Webhooks ed25519 signing key: `whsk_` + base64 of the 32-byte seed
 * (RFC 8032's private key). The public key, `whpk_…`, is derived from it: publicKeyOf().
 */
export function generateSigningKey(): string {
  return SIGNING_KEY_PREFIX + randomBytes(32).toString("base64");
}

/** A fresh signing secret for the scheme: an ed25519 signing key for ed25519, else a whsec_ secret. */
export function generateSecretFor(scheme: SignatureScheme): string {
  return scheme === "ed25519" ? generateSigningKey() : generateSecret();
}

/**
 * The 32-byte seed of a `whsk_` key, or null when it is not one. Besides the 32-byte seed,
 * the 64-byte libsodium form (seed followed by the public key) is accepted, the public half
 * checked against the seed.
 */
function ed25519Seed(secret: string): Buffer | null {
  if (!secret.startsWith(SIGNING_KEY_PREFIX)) return null;
  const text = secret.slice(SIGNING_KEY_PREFIX.length);
  if (!BASE64.test(text)) return null;
  const raw = Buffer.from(text, "base64");
  if (raw.length === 32) return raw;
  if (raw.length === 64) {
    const seed = raw.subarray(0, 32);
    return rawPublicKey(privateKeyOf(seed)).equals(raw.subarray(32)) ? seed : null;
  }
  return null;
}

/** True for a Standard Webhooks ed25519 signing key (`whsk_` + base64 of a 32-byte seed, or the 64-byte libsodium form). */
export function isSigningKey(secret: string): boolean {
  return ed25519Seed(secret) !== null;
}

function privateKeyOf(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return Buffer.from(jwk.x ?? "", "base64url");
}

// Parsing a key costs more than signing with it; a dispatcher signs with few keys, many times.
const KEY_CACHE_SIZE = 1000;
const keyCache = new Map<string, KeyObject>();

function signingKeyObject(secret: string): KeyObject {
  const cached = keyCache.get(secret);
  if (cached) return cached;
  const seed = ed25519Seed(secret);
  if (seed === null) throw new Error("cannot sign: the webhook's ed25519 signing key is not a whsk_ key");
  const key = privateKeyOf(seed);
  if (keyCache.size >= KEY_CACHE_SIZE) {
    const oldest = keyCache.keys().next().value;
    if (oldest !== undefined) keyCache.delete(oldest);
  }
  keyCache.set(secret, key);
  return key;
}

/** The public key (`whpk_` + base64 of 32 bytes) receivers verify v1a signatures with; null when `secret` is no signing key. */
export function publicKeyOf(secret: string): string | null {
  if (ed25519Seed(secret) === null) return null;
  return PUBLIC_KEY_PREFIX + rawPublicKey(signingKeyObject(secret)).toString("base64");
}

/** A secret rotation in progress: the secret being replaced, and the instant it stops signing. */
export interface Rotation {
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/**
 * Which secrets sign a request sent at `now`. Standard Webhooks (v1 and v1a) carries several
 * signatures in one header, so during a rotation it signs with both (new first). hex and sha256 carry one
 * signature: the old secret keeps signing alone until the switch-over instant
 * (previous_secret_expires_at), and from that instant the new one signs alone.
 */
export function signingSecrets(
  scheme: SignatureScheme,
  secret: string,
  rotation: Rotation,
  now: Date,
): { secret: string; previousSecret: string | null } {
  const { previousSecret, previousSecretExpiresAt } = rotation;
  const rotating = previousSecret !== null && previousSecretExpiresAt !== null && previousSecretExpiresAt.getTime() > now.getTime();
  if (!rotating) return { secret, previousSecret: null };
  return carriesSeveral(scheme) ? { secret, previousSecret } : { secret: previousSecret, previousSecret: null };
}

/** The Standard Webhooks schemes: several signatures fit in webhook-signature, so rotations sign with both keys. */
export function carriesSeveral(scheme: SignatureScheme): boolean {
  return scheme === "standard" || scheme === "ed25519";
}

export interface SignatureInput {
  scheme: SignatureScheme;
  secret: string;
  /** Standard and ed25519 schemes only: a second signature, for receivers still holding the old secret. */
  previousSecret?: string | null;
  /** sha256 scheme only; defaults to X-Hub-Signature-256. */
  headerName?: string | null;
  id: string;
  /** Unix seconds. */
  timestamp: number;
  body: string;
}


/** The HMAC key the Standard Webhooks libraries derive from a secret string. */
function standardKey(secret: string): Buffer {
  if (secret.startsWith(SECRET_PREFIX)) return Buffer.from(secret.slice(SECRET_PREFIX.length), "base64");
  if (BASE64.test(secret)) return Buffer.from(secret, "base64");
  return Buffer.from(secret, "utf8");
}

function standardSignature(secret: string, id: string, timestamp: number, body: string): string {
  const key = standardKey(secret);
  if (key.length === 0) throw new Error("cannot sign: the webhook secret is empty");
  return "v1," + createHmac("sha256", key).update(`${id}.${timestamp}.${body}`, "utf8").digest("base64");
}

function ed25519Signature(secret: string, id: string, timestamp: number, body: string): string {
  return "v1a," + sign(null, Buffer.from(`${id}.${timestamp}.${body}`, "utf8"), signingKeyObject(secret)).toString("base64");
}

function hexHmac(secret: string, body: string): string {
  if (secret.length === 0) throw new Error("cannot sign: the webhook secret is empty");
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(body, "utf8").digest("hex");
}

export function signatureHeaders(input: SignatureInput): Record<string, string> {
  // Every scheme carries the id and timestamp: receivers deduplicate on webhook-id.
  const common = { "webhook-id": input.id, "webhook-timestamp": String(input.timestamp) };
  switch (input.scheme) {
    case "standard": {
      const signatures = [standardSignature(input.secret, input.id, input.timestamp, input.body)];
      if (input.previousSecret) {
        // The spec allows several space-separated signatures; the new one goes first.
        signatures.push(standardSignature(input.previousSecret, input.id, input.timestamp, input.body));
      }
      return { ...common, "webhook-signature": signatures.join(" ") };
    }
    case "ed25519": {
      const signatures = [ed25519Signature(input.secret, input.id, input.timestamp, input.body)];
      if (input.previousSecret) signatures.push(ed25519Signature(input.previousSecret, input.id, input.timestamp, input.body));
      return { ...common, "webhook-signature": signatures.join(" ") };
    }
    case "hex":
      return { ...common, "X-Webhook-Signature": hexHmac(input.secret, input.body) };
    case "sha256":
      return { ...common, [input.headerName || "X-Hub-Signature-256"]: "sha256=" + hexHmac(input.secret, input.body) };
  }
}
