// The admin UI under /admin: a third thin face over the service layer (beside /v1 and the CLI),
// rendered on the server (preact to a string) and enhanced by htmx. This file owns what every
// page shares: the session check, CSRF and Origin checks on every POST, the security headers
// (a strict CSP: no inline script or style), form bodies, the assets and HTML error pages.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ApiOptions } from "../api/app";
import { toErrorResponse } from "../api/errors";
import { DomainError, coerceError } from "../errors";
import { assets } from "./assets";
import { FORM_LIMIT, field, formOf, parseForm } from "./forms";
import { isHtmx, refuse } from "./http";
import { registerAuthPages } from "./pages/signin";
import { registerKeyPages } from "./pages/keys";
import { registerOverviewPage } from "./pages/overview";
import { registerReplayPages } from "./pages/replay";
import { registerWebhookPages } from "./pages/webhooks";
import { registerDeliveryPages } from "./pages/deliveries";
import { registerEventPages } from "./pages/events";
import { registerInboundPages } from "./pages/inbound";
import { csrfMatches, readSession, type AdminSession } from "./session";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the admin's session check; null on its public routes (sign-in, assets, theme). */
    adminSession: AdminSession | null;
  }
  interface FastifyContextConfig {
    /** An admin route that needs no session (sign-in, assets, the theme switch). */
    adminPublic?: boolean;
  }
}

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/**
 * A same-site request: no Origin, or one naming this host (the scheme is left out: behind a
 * proxy that ends TLS the browser says https while this process sees http); a browser's
 * Sec-Fetch-Site, when sent, not cross-site.
 */
export function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin !== undefined) {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      return false;
    }
    const forwarded = request.headers["x-forwarded-host"];
    const ours = [request.headers.host, ...(typeof forwarded === "string" ? forwarded.split(",").map((h) => h.trim()) : [])];
    if (host === "" || !ours.includes(host)) return false;
  }
  const site = request.headers["sec-fetch-site"];
  return site === undefined || site === "same-origin" || site === "none";
}

export async function adminRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { conn } = opts;
  app.decorateRequest("adminSession", null);

  // The admin answers in HTML; none of its routes belongs in the API's OpenAPI document.
  app.addHook("onRoute", (route) => {
    route.schema = { ...route.schema, hide: true };
  });

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT }, (_request, body, done) => {
    done(null, parseForm(typeof body === "string" ? body : body.toString("utf8")));
  });

  app.addHook("onRequest", async (_request, reply) => {
    reply.header("content-security-policy", CSP);
    reply.header("x-content-type-options", "nosniff");
    reply.header("x-frame-options", "DENY");
    reply.header("referrer-policy", "same-origin");
    reply.header("cross-origin-opener-policy", "same-origin");
  });

  // After the body is parsed, so a form's _csrf field can be read.
  app.addHook("preHandler", async (request, reply) => {
    const changes = request.method !== "GET" && request.method !== "HEAD";
    if (changes && !sameOrigin(request)) {
      return refuse(request, reply, 403, "Refused", "This request came from another site. Submit the form from the admin itself.");
    }
    if (request.routeOptions.config.adminPublic) return;
    const session = await readSession(conn, request);
    if (session === null) {
      const next = request.method === "GET" ? `?next=${encodeURIComponent(request.url)}` : "";
      if (isHtmx(request)) return reply.code(401).header("hx-redirect", `/admin/signin${next}`).send("");
      return reply.code(303).header("location", `/admin/signin${next}`).header("cache-control", "no-store").send("");
    }
    request.adminSession = session;
    request.apiScope = { tenant: session.tenant };
    if (changes) {
      const header = request.headers["x-csrf-token"];
      const token = field(formOf(request), "_csrf") ?? (typeof header === "string" ? header : undefined);
      if (!csrfMatches(session, token)) {
        return refuse(request, reply, 403, "Refused", "The form was missing its security token or it has expired. Reload the page and try again.");
      }
    }
    reply.header("cache-control", "no-store");
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof DomainError && error.code === "unauthorized") return reply.code(303).header("location", "/admin/signin").send("");
    const { status, body, internal } = toErrorResponse(error, FORM_LIMIT);
    if (internal) request.log.error({ err: coerceError(error) }, "admin request failed");
    const title = status === 404 ? "Not found" : status >= 500 ? "Something went wrong" : "Cannot do that";
    return refuse(request, reply, status, title, body.error.message);
  });

  app.setNotFoundHandler((request, reply) => refuse(request, reply, 404, "Not found", "There is no such page in the admin."));

  const all = assets();
  const byName = new Map(Object.values(all).map((a) => [a.name, a]));
  app.get<{ Params: { name: string } }>("/assets/:name", { config: { adminPublic: true } }, async (request, reply) => {
    const a = byName.get(request.params.name);
    if (!a) return refuse(request, reply, 404, "Not found", "No such asset.");
    reply.header("cache-control", "public, max-age=31536000, immutable").header("vary", "accept-encoding").type(a.type);
    if (/\bgzip\b/.test(String(request.headers["accept-encoding"] ?? ""))) return reply.header("content-encoding", "gzip").send(a.gzip);
    return reply.send(a.body);
  });

  registerAuthPages(app, opts);
  registerOverviewPage(app, opts);
  registerKeyPages(app, opts);
  registerReplayPages(app, opts);
  registerWebhookPages(app, opts);
  registerDeliveryPages(app, opts);
  registerEventPages(app, opts);
  registerInboundPages(app, opts);
}
