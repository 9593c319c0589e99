// /v1/deliveries: every delivery the key sees, filtered; one delivery with every attempt, and
// sending it again; /v1/webhook-rates: how each webhook's deliveries ended over a window.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { circuitNoticeSchema, deliveryDetailSchema, deliveryViewSchema } from "../model/delivery";
import { DELIVERY_STATUSES } from "../model/enums";
import { eventPatternSchema } from "../model/filter";
import { storable, strictObject } from "../model/validation";
import { circuitNotices, getDelivery, listDeliveries, RESPONSE_CLASSES, retryDelivery } from "../services/deliveries";
import { webhookRates } from "../services/webhook-rates";
import { parseDuration } from "../util/duration";
import type { ApiOptions } from "./app";
import { scopeOf } from "./auth";
import { cursorSchema, errorResponses, idParams, limitSchema, pageOf, whenSchema } from "./schemas";

const uuidFilter = (what: string) => z.uuid({ error: `expected ${what} id such as 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f` });

export const deliveryListQuery = strictObject({
  status: z.enum(DELIVERY_STATUSES, { error: `expected one of ${DELIVERY_STATUSES.join(", ")}` }).optional(),
  webhook_id: uuidFilter("a webhook").optional().meta({ description: "Only this webhook's deliveries." }),
  event: eventPatternSchema.optional().meta({ description: "An event type or pattern: clients.created, clients.* or *." }),
  event_id: uuidFilter("an event").optional().meta({ description: "Only this event's deliveries (one per webhook that received it)." }),
  tenant: z.string().min(1).max(200).check(storable).optional().meta({ description: "Only this tenant's deliveries (a tenant key sees only its own anyway)." }),
  response_class: z
    .enum(RESPONSE_CLASSES, { error: `expected one of ${RESPONSE_CLASSES.join(", ")}` })
    .optional()
    .meta({ description: "The last answer: 2xx, 3xx, 4xx, 5xx, or none (no answer: a timeout, a refused connection)." }),
  since: whenSchema.optional().meta({ description: "Created at or after: a duration ago (2h) or an ISO timestamp." }),
  until: whenSchema.optional().meta({ description: "Created before: a duration ago (30m) or an ISO timestamp." }),
  limit: limitSchema(50),
  cursor: cursorSchema,
});

const MAX_WINDOW_MS = 30 * 86_400_000;
const WINDOW_MESSAGE = "expected a window from 1h to 30d, such as 24h or 7d";

const ratesQuery = strictObject({
  window: z
    .string()
    .max(20)
    .default("24h")
    .transform((text, ctx) => {
      let ms: number;
      try {
        ms = parseDuration(text);
      } catch {
        ms = NaN;
      }
      if (!(ms >= 3_600_000 && ms <= MAX_WINDOW_MS)) {
        ctx.addIssue({ code: "custom", message: WINDOW_MESSAGE });
        return z.NEVER;
      }
      return ms / 3_600_000;
    })
    .meta({ description: "How far back: 1h to 30d (default 24h)." }),
});

const rateSchema = z
  .object({
    webhook_id: z.uuid(),
    webhook_name: z.string().nullable(),
    total: z.number().int().meta({ description: "Deliveries created in the window." }),
    succeeded: z.number().int(),
    failed: z.number().int(),
    open: z.number().int().meta({ description: "Still pending or retrying." }),
    success_rate: z.number().nullable().meta({ description: "succeeded / (succeeded + failed), 0-1; null when none finished." }),
    last_status_code: z.number().int().nullable().meta({ description: "The newest attempted delivery's last HTTP status." }),
    last_error: z.string().nullable(),
    last_at: z.date().nullable(),
  })
  .meta({ id: "WebhookRate" });

const TAG = ["deliveries"];

export const deliveryRoutes: FastifyPluginAsyncZod<ApiOptions> = async (app, { conn }) => {
  app.get(
    "/deliveries",
    {
      schema: {
        tags: TAG,
        summary: "Deliveries across webhooks, newest first",
        description:
          "Every delivery the key sees (a tenant key: its tenant's), with the webhook's name beside its id, filtered by " +
          "status, webhook, event type or id, tenant, the last answer's class and creation time. circuits lists the " +
          "webhooks on the page whose open circuit holds pending deliveries back.",
        querystring: deliveryListQuery,
        response: {
          200: pageOf(deliveryViewSchema)
            .extend({ circuits: z.array(circuitNoticeSchema).meta({ description: "Open circuits of the webhooks with pending deliveries on this page." }) })
            .describe("A page of deliveries"),
          ...errorResponses(400, 401),
        },
      },
    },
    async (request) => {
      const scope = scopeOf(request);
      const page = await listDeliveries(conn, scope, request.query);
      const owed = page.items.filter((d) => d.status === "pending" || d.status === "retrying");
      const circuits = owed.length === 0 ? [] : await circuitNotices(conn, scope, { webhookIds: [...new Set(owed.map((d) => d.webhook_id))] });
      return { ...page, circuits };
    },
  );

  app.get(
    "/webhook-rates",
    {
      schema: {
        tags: ["webhooks"],
        summary: "How each webhook's deliveries ended over a window",
        description: "Per live webhook the key sees: deliveries created in the window by outcome, the success rate, and the last answer.",
        querystring: ratesQuery,
        response: {
          200: z.object({ window_hours: z.number(), items: z.array(rateSchema) }).describe("Rates per webhook, oldest webhook first"),
          ...errorResponses(400, 401),
        },
      },
    },
    async (request) => {
      const rates = await webhookRates(conn, scopeOf(request), null, request.query.window);
      return { window_hours: request.query.window, items: [...rates.values()] };
    },
  );

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
        summary: "Send a delivery now: a finished one again, a retrying one without waiting for its next attempt",
        description:
          "A finished delivery (succeeded, failed, cancelled) is sent again as a replay. A retrying one makes its next attempt now " +
          "(its attempt count and limit are kept). queued is false when it is pending (its first attempt is on its way), is " +
          "being sent right now, or is parked behind an open circuit (the circuit's probe decides).",
        params: idParams,
        response: { 202: z.object({ queued: z.boolean() }).describe("Whether it was queued"), ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request, reply) => reply.code(202).send(await retryDelivery(conn, scopeOf(request), request.params.id)),
  );
};
