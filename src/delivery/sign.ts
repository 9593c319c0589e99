// Signing: the Standard Webhooks scheme by default, and the two older styles receivers in the
// field still check (hex HMAC of the raw body; `sha256=<hex>` in a header the user names).
import { createHmac, randomBytes } from "node:crypto";
import type { SignatureScheme } from "../model/enums";

export type { SignatureScheme };

const SECRET_PREFIX = "whsec_";

/** A fresh Standard Webhooks secret: `whsec_` + base64 of 24 random bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(24).toString("base64");
}

/** A secret rotation in progress: the secret being replaced, and the instant it stops signing. */
export interface Rotation {
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/**
 * Which secrets sign a request sent at `now`. Standard Webhooks carries several signatures in
 * one header, so during a rotation it signs with both (new first). hex and sha256 carry one
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
  return scheme === "standard" ? { secret, previousSecret } : { secret: previousSecret, previousSecret: null };
}

export interface SignatureInput {
  scheme: SignatureScheme;
  secret: string;
  /** Standard scheme only: a second signature, for receivers still holding the old secret. */
  previousSecret?: string | null;
  /** sha256 scheme only; defaults to X-Hub-Signature-256. */
  headerName?: string | null;
  id: string;
  /** Unix seconds. */
  timestamp: number;
  body: string;
}

// Strict base64 (padding included), so a plain password like "hunter2" is not half-decoded.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

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
    case "hex":
      return { ...common, "X-Webhook-Signature": hexHmac(input.secret, input.body) };
    case "sha256":
      return { ...common, [input.headerName || "X-Hub-Signature-256"]: "sha256=" + hexHmac(input.secret, input.body) };
  }
}
