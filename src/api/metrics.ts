// GET /metrics: every Prometheus series in text format, outside /v1 and the OpenAPI document.
import type { FastifyPluginAsync } from "fastify";
import type { Metrics } from "../metrics";

export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, { metrics }) => {
  // No API key, like /v1/health: Prometheus scrapers rarely carry a bearer token. The output
  // holds webhook ids and counts only (no URLs, secrets or payloads); restrict who can reach
  // the port if even that is too much.
  app.get("/metrics", { schema: { hide: true } }, async (_request, reply) => {
    const body = await metrics.render();
    return reply.header("content-type", metrics.contentType).header("cache-control", "no-store").send(body);
  });
};
