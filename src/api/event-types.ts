// GET /v1/event-types: what there is to subscribe to.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Connection } from "../db/connection";
import { eventTypeSchema } from "../model/event-type";
import { listEventTypes } from "../services/event-types";
import { scopeOf } from "./auth";
import { errorResponses } from "./schemas";

export const eventTypeRoutes: FastifyPluginAsyncZod<{ conn: Connection }> = async (app, { conn }) => {
  app.get(
    "/event-types",
    {
      schema: {
        tags: ["event types"],
        summary: "Event types tracked tables produce and custom types emitted so far",
        description:
          "Every type a tracked table can produce (created, updated, deleted, truncated), before any such event happened, " +
          "with the JSON Schema of its data (from the table's columns) and an example body per payload preset; then the " +
          "custom types emit() has produced. A tenant key sees the custom types of its own tenant's events only.",
        response: { 200: z.object({ items: z.array(eventTypeSchema) }).describe("Every known event type"), ...errorResponses(401) },
      },
    },
    async (request) => ({ items: await listEventTypes(conn, scopeOf(request)) }),
  );
};
