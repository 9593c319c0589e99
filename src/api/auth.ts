// Bearer API keys: every /v1 route but health needs one. The key's scope (admin, or one
// tenant) rides on the request for the handlers to pass to the services.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Connection } from "../db/connection";
import { DomainError } from "../errors";
import { authenticate } from "../services/keys";
import type { Scope } from "../services/scope";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook; null on routes that need no key. */
    apiScope: Scope | null;
  }
}

const MISSING = "missing API key: send Authorization: Bearer <key> (create one with pg-webhooks keys create)";

/** Adds the hook to every route of `app` (an encapsulated context) that checks the key. */
export function requireApiKey(app: FastifyInstance, conn: Connection): void {
  app.addHook("onRequest", async (request) => {
    const header = request.headers.authorization;
    const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m || m[1] === undefined) throw new DomainError("unauthorized", MISSING);
    const scope = await authenticate(conn, m[1]);
    if (scope === null) throw new DomainError("unauthorized", "unknown or revoked API key");
    request.apiScope = scope;
  });
}

/** The caller's scope; only reachable behind requireApiKey. */
export function scopeOf(request: FastifyRequest): Scope {
  if (request.apiScope === null) throw new DomainError("unauthorized", MISSING);
  return request.apiScope;
}
