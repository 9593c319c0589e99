// GET /v1/health: needs no key; 200 when the database answers, 503 when it does not.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Connection } from "../db/connection";
import { DomainError } from "../errors";
import { errorResponses } from "./schemas";

/** A health check that waits longer than this counts the database as down. */
export const HEALTH_TIMEOUT_MS = 2000;

export const healthRoutes: FastifyPluginAsyncZod<{ conn: Connection }> = async (app, { conn }) => {
  app.get(
    "/health",
    {
      schema: {
        tags: ["health"],
        summary: "Is the API up and the database answering?",
        security: [],
        response: { 200: z.object({ status: z.literal("ok") }).describe("The API is up and the database answers"), ...errorResponses(503) },
      },
    },
    async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), HEALTH_TIMEOUT_MS);
      });
      try {
        await Promise.race([conn.sql`select 1`, timeout]);
      } catch {
        throw new DomainError("database_unavailable", "the database does not answer");
      } finally {
        clearTimeout(timer);
      }
      return { status: "ok" as const };
    },
  );
};
