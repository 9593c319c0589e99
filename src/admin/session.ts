// Admin sessions: a signed, expiring cookie naming an API key, and the CSRF token bound to it.
// Nothing is stored server-side: the cookie is `<key id>.<expiry>.<HMAC>`, signed with the key's
// stored hash (never sent anywhere), so any replica verifies it, and revoking the key ends every
// session made with it at once.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Connection } from "../db/connection";
import { sessionKeyById, type SessionKey } from "../services/keys";

export const SESSION_COOKIE = "pgw_session";
export const THEME_COOKIE = "pgw_theme";
/** A session lasts this long from sign-in; then the key is asked for again. */
export const SESSION_TTL_S = 8 * 3600;
/** Every cookie of the admin stays under /admin. */
const COOKIE_PATH = "/admin";

export interface AdminSession {
  keyId: string;
  /** null: an admin key (every tenant). */
  tenant: string | null;
  expiresAt: Date;
  /** Carried by every state-changing request (form field _csrf or header x-csrf-token). */
  csrf: string;
}

function mac(secret: string, text: string): string {
  return createHmac("sha256", secret).update(text, "utf8").digest("base64url");
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The cookie's value for a session of `key` that ends `ttlS` seconds from `now`. */
export function sessionValue(key: SessionKey, now = Date.now(), ttlS = SESSION_TTL_S): string {
  const body = `${key.id}.${Math.floor(now / 1000) + ttlS}`;
  return `${body}.${mac(key.signingSecret, `session:${body}`)}`;
}

function csrfFor(key: SessionKey, cookie: string): string {
  return mac(key.signingSecret, `csrf:${cookie}`);
}

/** Every cookie of a Cookie header, by name (the first of repeated names wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name !== "" && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** The request's session, or null when it has none, a forged or expired one, or its key was revoked. */
export async function readSession(conn: Connection, request: FastifyRequest, now = Date.now()): Promise<AdminSession | null> {
  const value = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
  if (value === undefined || value.length > 300) return null;
  const m = /^([0-9a-f-]{36})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m || m[1] === undefined || m[2] === undefined || m[3] === undefined) return null;
  const expires = Number(m[2]) * 1000;
  if (!(expires > now)) return null;
  const key = await sessionKeyById(conn, m[1]);
  if (key === null) return null;
  if (!sameText(m[3], mac(key.signingSecret, `session:${m[1]}.${m[2]}`))) return null;
  return { keyId: key.id, tenant: key.tenant, expiresAt: new Date(expires), csrf: csrfFor(key, value) };
}

/** True when the token the request carries is its session's. */
export function csrfMatches(session: AdminSession, token: string | undefined): boolean {
  return token !== undefined && sameText(token, session.csrf);
}

function cookie(request: FastifyRequest, name: string, value: string, maxAgeS: number): string {
  // Secure whenever the browser reached the admin over HTTPS: directly, or through a proxy that
  // ends TLS and says so. A forged X-Forwarded-Proto could only make the cookie stricter.
  const forwarded = String(request.headers["x-forwarded-proto"] ?? "").split(",")[0]?.trim();
  const secure = request.protocol === "https" || forwarded === "https" ? "; Secure" : "";
  return `${name}=${value}; Path=${COOKIE_PATH}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${secure}`;
}

export function startSession(request: FastifyRequest, reply: FastifyReply, key: SessionKey): void {
  reply.header("set-cookie", cookie(request, SESSION_COOKIE, sessionValue(key), SESSION_TTL_S));
}

export function endSession(request: FastifyRequest, reply: FastifyReply): void {
  reply.header("set-cookie", cookie(request, SESSION_COOKIE, "", 0));
}

export type Theme = "light" | "dark" | "system";

export function themeOf(request: FastifyRequest): Theme {
  const t = parseCookies(request.headers.cookie).get(THEME_COOKIE);
  return t === "light" || t === "dark" ? t : "system";
}

export function setTheme(request: FastifyRequest, reply: FastifyReply, theme: Theme): void {
  reply.header("set-cookie", cookie(request, THEME_COOKIE, theme, theme === "system" ? 0 : 365 * 24 * 3600));
}
