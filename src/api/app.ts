// The HTTP API, built but not started: the composition root (or a test) calls listen() or
// inject(). One plugin per resource under /v1; the OpenAPI document comes from the same zod
// schemas that validate requests, served at /openapi.json and rendered at /docs.
import { z } from "zod";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { serializerCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import type { Config } from "../config";
import type { Connection } from "../db/connection";
import type { DeliverContext } from "../dispatch/context";
import { parseExact } from "../delivery/event-json";
import { DomainError } from "../errors";
import { jsonProblem, type JsonProblem } from "../model/validation";
import type { Logger } from "../logger";
import type { Metrics } from "../metrics";
import { adminRoutes } from "../admin/plugin";
import { backfillRoutes } from "./backfills";
import { requireApiKey } from "./auth";
import { deliveryRoutes } from "./deliveries";
import { registerDocs } from "./docs";
import { clientErrorHandler, errorHandler, frameworkErrorHandler, notFoundHandler, validatorCompiler } from "./errors";
import { eventTypeRoutes } from "./event-types";
import { healthRoutes } from "./health";
import { inboundRoutes } from "./inbound";
import { inboundSourceRoutes } from "./inbound-sources";
import { metricsRoutes } from "./metrics";
import { webhookRoutes } from "./webhooks";

/** Request bodies larger than this are refused with 413. */
export const BODY_LIMIT = 1024 * 1024;

function invalidBodyValue(problem: JsonProblem): DomainError {
  const path = problem.path.join(".") || "body";
  return new DomainError("invalid_input", `${path}: ${problem.message}`, [{ path, message: problem.message }]);
}

/** The body with the numbers JSON.parse changed put back as their digits; `value` when none. */
function exactValue(text: string, value: unknown): unknown {
  const parsed = parseExact(text);
  return parsed.exact ? parsed.value : value;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });
const NO_QUERY = z.strictObject({}, { error: "unknown query parameter; this route takes none" });

export interface ApiOptions {
  conn: Connection;
  /** What test sends deliver with: the same sender and logger as the dispatcher. */
  ctx: DeliverContext;
  config: Config;
}

export interface BuildAppOptions extends ApiOptions {
  logger?: Logger;
  /** Served at GET /metrics when given; without it there is no /metrics route. */
  metrics?: Metrics;
  /** Serve the admin UI at /admin; default config.WEBHOOKS_ADMIN. */
  admin?: boolean;
}

export function buildApp(opts: BuildAppOptions): FastifyInstance {
  const { conn } = opts;
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: BODY_LIMIT,
    frameworkErrors: frameworkErrorHandler,
    clientErrorHandler,
  });

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler(BODY_LIMIT));
  app.setNotFoundHandler(notFoundHandler);
  app.decorateRequest("apiScope", null);

  // Every /v1 route refuses query parameters it does not know, as the list routes do.
  app.addHook("onRoute", (route) => {
    if (route.url.startsWith("/v1/") && route.schema?.querystring === undefined) {
      route.schema = { ...route.schema, querystring: NO_QUERY };
    }
  });

  // JSON with useful messages for broken bodies; an empty body is no body (POST …/test).
  const secureJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser(["application/json", "text/plain"]);
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    // Bytes that are not UTF-8 would become U+FFFD unseen: the stored value would not be the one sent.
    let text: string;
    try {
      text = typeof body === "string" ? body : UTF8.decode(body);
    } catch {
      const message = "expected UTF-8 text; the body holds a byte sequence that is not UTF-8";
      done(new DomainError("invalid_input", `body: ${message}`, [{ path: "body", message }]), undefined);
      return;
    }
    if (text.trim() === "") {
      done(null, undefined);
      return;
    }
    secureJson(request, text, (err, value) => {
      if (!err) {
        // Whatever the route: nothing Postgres cannot store, nothing nested deep enough to
        // overflow a recursive walk later. The schemas check the same for the CLI's input.
        // A number a double would change (9007199254740993) is kept as its digits
        // (ExactNumber): filters refuse it by name, test data sends it exactly, and any other
        // field says it cannot hold it.
        const problem = jsonProblem(value);
        if (problem === null) done(null, exactValue(text, value));
        else done(invalidBodyValue(problem), undefined);
        return;
      }
      let message: string;
      try {
        JSON.parse(text);
        message = "a __proto__ or constructor.prototype key is not allowed";
      } catch (e) {
        message = `invalid JSON: ${e instanceof Error ? e.message : String(e)}`;
      }
      done(new DomainError("invalid_input", `body: ${message}`, [{ path: "body", message }]), undefined);
    });
  });

  registerDocs(app);

  app.register(healthRoutes, { prefix: "/v1", conn });
  if (opts.metrics) app.register(metricsRoutes, { metrics: opts.metrics });
  app.register(
    async (v1) => {
      requireApiKey(v1, conn);
      const deps: ApiOptions = { conn, ctx: opts.ctx, config: opts.config };
      await v1.register(webhookRoutes, deps);
      await v1.register(deliveryRoutes, deps);
      await v1.register(backfillRoutes, deps);
      await v1.register(eventTypeRoutes, { conn });
      await v1.register(inboundSourceRoutes, deps);
    },
    { prefix: "/v1" },
  );
  // Other systems' webhooks: their own plugin (raw-bytes body parser, per-source limits), no API key.
  app.register(inboundRoutes, { conn, observer: opts.metrics?.inbound });
  if (opts.admin ?? opts.config.WEBHOOKS_ADMIN) {
    app.register(adminRoutes, { prefix: "/admin", conn, ctx: opts.ctx, config: opts.config });
  }

  return app.withTypeProvider<ZodTypeProvider>() as unknown as FastifyInstance;
}
