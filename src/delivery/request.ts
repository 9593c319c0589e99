// Builds the HTTP request for one delivery to one subscription's target: headers, auth and
// signature, plus a copy of the headers with every secret masked for the attempt log.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { OutgoingRequest } from "./client";
import { maskValue, isSecretHeader } from "./mask";
import { signatureHeaders, signingSecrets } from "./sign";
import type { Subscription } from "../db/schema";
import type { Auth } from "../model/webhook";

export type { Auth };

/** What a request is built from: a webhook row's target columns, with its auth parsed. */
export type TargetSpec = Pick<
  Subscription,
  | "url"
  | "method"
  | "headers"
  | "secret_headers"
  | "signature_scheme"
  | "signature_header"
  | "secret"
  | "previous_secret"
  | "previous_secret_expires_at"
  | "timeout_ms"
> & { auth: Auth; iso_timestamp_header?: boolean };

// src/delivery and dist/delivery both sit two levels below package.json.
const { version } = z
  .object({ version: z.string() })
  .parse(JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")));

export const USER_AGENT = `pg-webhooks/${version}`;

function authHeader(auth: Auth): [string, string] | null {
  switch (auth.type) {
    case "none":
      return null;
    case "bearer":
      return ["authorization", `Bearer ${auth.token}`];
    case "basic":
      return ["authorization", "Basic " + Buffer.from(`${auth.username}:${auth.password}`, "utf8").toString("base64")];
    case "header":
      return [auth.name.toLowerCase(), auth.value];
  }
}

export function buildRequest(
  target: TargetSpec,
  e: { event_id: string; type: string; body: string },
  deliveryId: string,
  now: Date,
): { request: OutgoingRequest; loggedHeaders: Record<string, string> } {
  // Names are lower-cased so a static "Content-Type" replaces ours instead of doubling it.
  const headers: Record<string, string> = { "content-type": "application/json", "user-agent": USER_AGENT };
  const secretNames = new Set<string>(["authorization"]);
  for (const [name, value] of Object.entries(target.headers)) {
    const lower = name.toLowerCase();
    headers[lower] = value;
    if (isSecretHeader(lower, target.secret_headers)) secretNames.add(lower);
  }

  const auth = authHeader(target.auth);
  if (auth) {
    headers[auth[0]] = auth[1];
    secretNames.add(auth[0]);
  }

  const signing = signingSecrets(
    target.signature_scheme,
    target.secret,
    { previousSecret: target.previous_secret, previousSecretExpiresAt: target.previous_secret_expires_at },
    now,
  );
  const seconds = Math.floor(now.getTime() / 1000);
  const signed = signatureHeaders({
    scheme: target.signature_scheme,
    secret: signing.secret,
    previousSecret: signing.previousSecret,
    headerName: target.signature_header,
    // The event id, not the delivery id: stable across retries and replays, for dedup.
    id: e.event_id,
    timestamp: seconds,
    body: e.body,
  });
  // The guides' header: the signing time as ISO 8601, the same second as webhook-timestamp.
  if (target.iso_timestamp_header) headers["x-webhook-timestamp"] = new Date(seconds * 1000).toISOString();
  for (const [name, value] of Object.entries(signed)) {
    const lower = name.toLowerCase();
    headers[lower] = value;
    if (lower !== "webhook-id" && lower !== "webhook-timestamp") secretNames.add(lower);
  }

  headers["x-webhook-event"] = e.type;
  headers["x-webhook-delivery-id"] = deliveryId;

  const loggedHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    loggedHeaders[name] = secretNames.has(name) ? maskValue(value) : value;
  }

  return {
    request: { url: target.url, method: target.method, headers, body: e.body, timeoutMs: target.timeout_ms },
    loggedHeaders,
  };
}
