// POST /in/<slug> and /in/<slug>/<event_name>: other systems' webhooks. An encapsulated plugin
// whose one content-type parser keeps every body as the exact bytes received (verification
// runs over them), limited per source. Answers 200 only after the event is committed.
import { Transform } from "node:stream";
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Connection } from "../db/connection";
import { fromPostgresError } from "../db/errors";
import { coerceError, type ErrorCode } from "../errors";
import { MAX_BODY_LIMIT, SLUG, flatHeaders, type SourceRow } from "../model/inbound";
import { InboundRateLimiter, SourceCache, receive, type ReceiveOutcome } from "../services/inbound-receive";
import { errorBody } from "./errors";
import { errorResponses } from "./schemas";

/** Counts each request by source slug and result (the metrics' inbound_requests_total). */
export interface InboundObserver {
  request(source: string, result: InboundResult): void;
}

export type InboundResult =
  | "stored"
  | "duplicate"
  | "challenge"
  | "unverified"
  | "not_found"
  | "too_large"
  | "rate_limited"
  | "unavailable"
  | "error";

export interface InboundRouteOptions {
  conn: Connection;
  observer?: InboundObserver | undefined;
}

/** Seconds a sender is asked to wait when the database does not answer. */
const RETRY_AFTER_UNAVAILABLE_S = 5;

const TAG = ["inbound"];

const receivedSchema = z
  .object({
    id: z.string().optional().meta({ description: "The stored event's id (the first one's, for a duplicate)." }),
    duplicate: z.boolean().optional().meta({ description: "True when the sender's id was seen before: nothing new was stored." }),
    challenge: z.string().optional().meta({ description: "Slack's url_verification challenge, echoed." }),
  })
  .describe("Stored (committed), a duplicate of a stored event, or Slack's challenge");

const params = z.object({ slug: z.string(), event_name: z.string().optional() });

const sources = new WeakMap<FastifyRequest, SourceRow>();

function refuse(reply: FastifyReply, status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}) {
  return reply.status(status).headers(headers).send(errorBody(code, message));
}

export const inboundRoutes: FastifyPluginAsync<InboundRouteOptions> = async (app: FastifyInstance, { conn, observer }) => {
  const limiter = new InboundRateLimiter();
  const cache = new SourceCache(conn);
  app.addHook("onClose", async () => cache.close());
  const count = (request: FastifyRequest, result: InboundResult) => {
    const source = sources.get(request);
    // Unknown slugs share one label: a scanner must not grow the series without bound.
    observer?.request(source?.slug ?? "unknown", result);
  };

  const unavailable = (request: FastifyRequest, reply: FastifyReply, e: unknown) => {
    const db = fromPostgresError(e);
    if (db?.code === "database_unavailable") {
      count(request, "unavailable");
      request.log.warn({ err: coerceError(e) }, "inbound: the database does not answer; the sender is told to retry");
      return refuse(reply, 503, "database_unavailable", "the database does not answer; try again shortly", {
        "retry-after": String(RETRY_AFTER_UNAVAILABLE_S),
      });
    }
    count(request, "error");
    request.log.error({ err: coerceError(e) }, "inbound: request failed");
    return refuse(reply, 500, "internal_error", "internal error; the server log has the details");
  };

  // Every content type, as bytes: a JSON body is never parsed and re-serialized before it is verified.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: MAX_BODY_LIMIT }, (request, body, done) => {
    const source = sources.get(request);
    const buf = body as Buffer;
    if (source && buf.length > source.max_body_bytes) {
      const err = Object.assign(new Error("body too large"), { code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 });
      done(err, undefined);
      return;
    }
    done(null, buf);
  });

  app.setErrorHandler((error, request, reply) => {
    const code = (error as { code?: string }).code;
    if (code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      count(request, "too_large");
      const limit = sources.get(request)?.max_body_bytes ?? MAX_BODY_LIMIT;
      return refuse(reply, 413, "payload_too_large", `body: larger than this source's limit of ${limit} bytes`);
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return refuse(reply, status, status === 415 ? "unsupported_media_type" : "invalid_input", error instanceof Error ? error.message : "bad request");
    }
    return unavailable(request, reply, error);
  });

  // Before the body is read: unknown sources, declared sizes over the limit and senders over
  // the rate are refused without buffering anything.
  app.addHook("onRequest", async (request, reply) => {
    const { slug } = request.params as { slug?: string };
    let source: SourceRow | null = null;
    if (slug !== undefined && SLUG.test(slug)) {
      try {
        source = await cache.get(slug, Date.now());
      } catch (e) {
        return unavailable(request, reply, e);
      }
    }
    if (source === null) {
      count(request, "not_found");
      return refuse(reply, 404, "inbound_source_not_found", "no enabled inbound source at this URL");
    }
    sources.set(request, source);
    const declared = Number(request.headers["content-length"] ?? "0");
    if (Number.isFinite(declared) && declared > source.max_body_bytes) {
      count(request, "too_large");
      // Refused unread: Node discards the rest of the body without buffering it.
      return refuse(reply, 413, "payload_too_large", `body: larger than this source's limit of ${source.max_body_bytes} bytes`);
    }
    const wait = limiter.take(source.id, source.rate_limit_per_s, Date.now());
    if (wait > 0) {
      count(request, "rate_limited");
      return refuse(reply, 429, "rate_limited", `more than ${source.rate_limit_per_s} requests per second to this source; retry after ${wait} s`, {
        "retry-after": String(wait),
      });
    }
    return undefined;
  });

  // A body without a declared length (chunked) is cut off as soon as it passes the source's
  // limit, instead of being read up to MAX_BODY_LIMIT first.
  app.addHook("preParsing", async (request, _reply, payload) => {
    const limit = sources.get(request)?.max_body_bytes ?? MAX_BODY_LIMIT;
    let seen = 0;
    return payload.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, next) {
          seen += chunk.length;
          if (seen > limit) next(Object.assign(new Error("body too large"), { code: "FST_ERR_CTP_BODY_TOO_LARGE", statusCode: 413 }));
          else next(null, chunk);
        },
      }),
    );
  });

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const source = sources.get(request);
    if (source === undefined) return refuse(reply, 404, "inbound_source_not_found", "no enabled inbound source at this URL");
    const { event_name } = request.params as { event_name?: string };
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    let outcome: ReceiveOutcome;
    try {
      outcome = await receive(conn, source, {
        pathEventName: event_name,
        headers: flatHeaders(request.headers),
        body,
        now: new Date(),
      });
    } catch (e) {
      return unavailable(request, reply, e);
    }
    count(request, outcome.result);
    switch (outcome.result) {
      case "stored":
        return reply.status(200).send({ id: outcome.id, duplicate: false });
      case "duplicate":
        return reply.status(200).send({ id: outcome.id, duplicate: true });
      case "challenge":
        return reply.status(200).send({ challenge: outcome.challenge });
      case "unverified":
        // Unauthenticated requests must not spend the real sender's rate (anyone who knows the slug could keep it at 429).
        limiter.refund(source.id);
        // The reason names what failed, never a secret; nothing was stored.
        request.log.warn({ source: source.slug, reason: outcome.reason }, "inbound: request refused");
        return refuse(reply, 401, "verification_failed", `the request could not be verified: ${outcome.reason}`);
    }
  };

  const schema = {
    tags: TAG,
    // No API key: the source's own scheme (signature, key, basic) authenticates the sender.
    security: [],
    params,
    response: { 200: receivedSchema, ...errorResponses(401, 404, 413, 429, 503) },
  };
  // Not one log line per request (two synchronous writes each, a fifth of this route's CPU at
  // volume): refusals and failures are logged at warn and error, and every request is counted
  // in pgwebhooks_inbound_requests_total.
  const logLevel = "warn";
  app.post("/in/:slug", { logLevel, schema: { ...schema, summary: "Receive a webhook for an inbound source" } }, handler);
  app.post(
    "/in/:slug/:event_name",
    { logLevel, schema: { ...schema, summary: "Receive a webhook, the event name in the path (as automation platforms send it)" } },
    handler,
  );
};
