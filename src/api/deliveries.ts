// /v1/deliveries/:id: one delivery with every attempt, and sending it again.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { deliveryDetailSchema } from "../model/delivery";
import { getDelivery, retryDelivery } from "../services/deliveries";
import type { ApiOptions } from "./app";
import { scopeOf } from "./auth";
import { errorResponses, idParams } from "./schemas";

const TAG = ["deliveries"];

export const deliveryRoutes: FastifyPluginAsyncZod<ApiOptions> = async (app, { conn }) => {
  app.get(
    "/deliveries/:id",
    {
      schema: {
        tags: TAG,
        summary: "A delivery with every attempt",
        description: "Request headers (auth and signature values masked), body, response status, headers and body (at most 5,000 characters), duration, error.",
        params: idParams,
        response: { 200: deliveryDetailSchema.describe("The delivery and its attempts"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => getDelivery(conn, scopeOf(request), request.params.id),
  );

  app.post(
    "/deliveries/:id/retry",
    {
      schema: {
        tags: TAG,
        summary: "Send a finished delivery again now",
        description: "queued is false when the delivery is still pending or retrying: it is already owed.",
        params: idParams,
        response: { 202: z.object({ queued: z.boolean() }).describe("Whether it was queued"), ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request, reply) => reply.code(202).send(await retryDelivery(conn, scopeOf(request), request.params.id)),
  );
};
