// /v1/webhooks: create, list, read, change and delete webhooks; their secret, test sends,
// secret rotation, delivery log and replay. Each handler parses, calls a service, answers.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { eventPatternSchema } from "../model/filter";
import { circuitNoticeSchema, deliveryViewSchema } from "../model/delivery";
import { DELIVERY_STATUSES, REPLAYABLE_STATUSES } from "../model/enums";
import { listWebhookDeliveries, replayWebhookDeliveries } from "../services/deliveries";
import { sendTest, testResultSchema, testSendSchema } from "../services/test-send";
import { storable, strictObject } from "../model/validation";
import { rotateSecretSchema, rotatedSecretSchema } from "../model/rotation";
import { webhookCreateSchema, webhookPatchSchema, webhookViewSchema } from "../model/webhook";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  getWebhookSecret,
  listWebhooks,
  previewWebhook,
  rotateSecret,
  updateWebhook,
} from "../services/webhooks";
import { previewItemSchema, previewRequestSchema } from "../services/preview";
import type { ApiOptions } from "./app";
import { scopeOf } from "./auth";
import { cursorSchema, errorResponses, idParams, limitSchema, pageOf, whenSchema } from "./schemas";

const TAG = ["webhooks"];

const webhookListQuery = strictObject({
  is_active: z
    .enum(["true", "false"], { error: "expected true or false" })
    .transform((v) => v === "true")
    .optional()
    .meta({ description: "Only active (true) or disabled (false) webhooks." }),
  event: z
    .string()
    .max(200)
    .check(storable)
    .optional()
    .meta({ description: "Only webhooks that receive this event type, e.g. clients.created." }),
  limit: limitSchema(100),
  cursor: cursorSchema,
});

const deliveryListQuery = strictObject({
  status: z.enum(DELIVERY_STATUSES, { error: `expected one of ${DELIVERY_STATUSES.join(", ")}` }).optional(),
  event: eventPatternSchema.optional().meta({ description: "An event type or pattern: clients.created, clients.* or *." }),
  since: whenSchema.optional().meta({ description: "Created at or after: a duration ago (2h) or an ISO timestamp." }),
  until: whenSchema.optional().meta({ description: "Created before: a duration ago (30m) or an ISO timestamp." }),
  limit: limitSchema(50),
  cursor: cursorSchema,
});

const replayBody = strictObject({
  status: z
    .enum(REPLAYABLE_STATUSES, { error: `expected one of ${REPLAYABLE_STATUSES.join(", ")}` })
    .default("failed")
    .meta({ description: "Which finished deliveries to send again (pending and retrying ones are already owed)." }),
  event: eventPatternSchema.optional(),
  since: whenSchema.optional(),
  until: whenSchema.optional(),
}).prefault({});

const previewList = z.array(previewItemSchema).meta({
  description:
    "The payload rendered for the 3 most recent events of the subscribed types (or made-up samples when there is none): " +
    "what receivers would get. A template that fails on an event shows the error there; one a guard cuts off is refused (400).",
});

const createdSchema = webhookViewSchema.extend({
  secret: z.string().meta({ description: "The signing secret. Shown here and by GET /v1/webhooks/{id}/secret only." }),
  preview: previewList,
});

const patchedSchema = webhookViewSchema.extend({
  preview: previewList.optional().meta({ description: "Present when the patch sets payload: it rendered, as on create." }),
});

export const webhookRoutes: FastifyPluginAsyncZod<ApiOptions> = async (app, { conn, ctx, config }) => {
  const writeOpts = { allowPrivateTargets: config.WEBHOOKS_ALLOW_PRIVATE_TARGETS };

  app.post(
    "/webhooks",
    {
      schema: {
        tags: TAG,
        summary: "Create a webhook",
        description: "Answers with the webhook and its signing secret (generated whsec_… unless given).",
        body: webhookCreateSchema,
        response: { 201: createdSchema.describe("The webhook, with its secret"), ...errorResponses(400, 401, 413, 415) },
      },
    },
    async (request, reply) => {
      const { webhook, secret, preview } = await createWebhook(conn, scopeOf(request), request.body, writeOpts);
      return reply.code(201).header("location", `/v1/webhooks/${webhook.id}`).send({ ...webhook, secret, preview });
    },
  );

  app.get(
    "/webhooks",
    {
      schema: {
        tags: TAG,
        summary: "List webhooks, oldest first",
        description: "Each webhook carries its endpoint's health (circuit breaker state and run of failures).",
        querystring: webhookListQuery,
        response: { 200: pageOf(webhookViewSchema).describe("A page of webhooks"), ...errorResponses(400, 401) },
      },
    },
    async (request) => listWebhooks(conn, scopeOf(request), request.query),
  );

  app.get(
    "/webhooks/:id",
    {
      schema: {
        tags: TAG,
        summary: "Get a webhook (without its secret)",
        description:
          "With its endpoint's health: circuit closed (deliveries flow), open (the endpoint kept failing; deliveries wait " +
          "until a probe succeeds) or half_open (a probe is in flight), the failures in a row and when they began.",
        params: idParams,
        response: { 200: webhookViewSchema.describe("The webhook"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => getWebhook(conn, scopeOf(request), request.params.id),
  );

  app.patch(
    "/webhooks/:id",
    {
      schema: {
        tags: TAG,
        summary: "Change a webhook",
        description:
          "Only the fields given change. is_active: false stops new deliveries and fails those parked behind an open " +
          "circuit (they stay replayable); true clears disabled_reason and resets the endpoint's health (circuit closed).",
        params: idParams,
        body: webhookPatchSchema,
        response: { 200: patchedSchema.describe("The webhook as changed"), ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request) => updateWebhook(conn, scopeOf(request), request.params.id, request.body, writeOpts),
  );

  app.delete(
    "/webhooks/:id",
    {
      schema: {
        tags: TAG,
        summary: "Delete a webhook",
        description: "Deliveries still pending are cancelled; the delivery history stays until pruned.",
        params: idParams,
        response: { 204: z.null().describe("Deleted"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      await deleteWebhook(conn, scopeOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/webhooks/:id/secret",
    {
      schema: {
        tags: TAG,
        summary: "Get a webhook's signing secret",
        description:
          "The newest secret. During a hex or sha256 switch-over (see secret_rotation) the previous one still signs " +
          "until previous_secret_expires_at.",
        params: idParams,
        response: { 200: z.object({ secret: z.string() }).describe("The newest signing secret"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ({ secret: await getWebhookSecret(conn, scopeOf(request), request.params.id) }),
  );

  app.post(
    "/webhooks/:id/test",
    {
      schema: {
        tags: TAG,
        summary: "Send a test event now",
        description:
          "Sends webhook.test (or a sample of the event type given) through the real signing and sending path, records it " +
          "as a delivery, and answers with the receiver's status code, the duration and an excerpt of its answer. " +
          "Works on disabled webhooks. A receiver's failure is still a 200 here, with ok: false.",
        params: idParams,
        body: testSendSchema.prefault({}),
        response: { 200: testResultSchema.describe("How the receiver answered"), ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request) => sendTest(ctx, scopeOf(request), request.params.id, request.body),
  );

  app.post(
    "/webhooks/:id/preview",
    {
      schema: {
        tags: TAG,
        summary: "Render the webhook's body without sending it",
        description:
          "Renders the webhook's payload (preset or template) for the event given, or for the 3 most recent events of the " +
          "types it subscribes to (made-up samples when there is none). Nothing is sent or recorded.",
        params: idParams,
        body: previewRequestSchema.prefault({}),
        response: { 200: z.object({ items: z.array(previewItemSchema) }).describe("The bodies"), ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request) => ({ items: await previewWebhook(conn, scopeOf(request), request.params.id, request.body) }),
  );

  app.post(
    "/webhooks/:id/rotate-secret",
    {
      schema: {
        tags: TAG,
        summary: "Replace the signing secret",
        description:
          "The old secret keeps signing until previous_secret_expires_at (grace_ms, default 24 h, or switch_at). " +
          "standard: requests carry signatures from both the new and the old secret until then. hex and sha256 carry " +
          "one signature: the old secret signs alone until then and the new one alone from then on. receivers_see says which.",
        params: idParams,
        body: rotateSecretSchema.prefault({}),
        response: { 200: rotatedSecretSchema.describe("The new secret"), ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request) => rotateSecret(conn, scopeOf(request), request.params.id, request.body),
  );

  app.get(
    "/webhooks/:id/deliveries",
    {
      schema: {
        tags: TAG,
        summary: "A webhook's deliveries, newest first",
        params: idParams,
        querystring: deliveryListQuery,
        response: {
          200: pageOf(deliveryViewSchema)
            .extend({
              circuit: circuitNoticeSchema
                .nullable()
                .meta({ description: "Set while the webhook's circuit is open: why its deliveries stay pending, and when it probes next." }),
            })
            .describe("A page of deliveries"),
          ...errorResponses(400, 401, 404),
        },
      },
    },
    async (request) => listWebhookDeliveries(conn, scopeOf(request), request.params.id, request.query),
  );

  app.post(
    "/webhooks/:id/replay",
    {
      schema: {
        tags: TAG,
        summary: "Send matching finished deliveries again",
        description:
          "Queues the webhook's deliveries with this status (default failed) and the other filters again, each with its " +
          "original event id. Deliveries already pending are left alone, so replaying twice queues nothing twice.",
        params: idParams,
        body: replayBody,
        response: {
          202: z.object({
            matched: z.number().int().meta({ description: "Deliveries that matched." }),
            queued: z.number().int().meta({ description: "Deliveries queued now (matched ones queued meanwhile by someone else are skipped)." }),
            circuit: circuitNoticeSchema
              .nullable()
              .meta({ description: "Set when the webhook's circuit is open: the queued deliveries wait (pending) for its next probe." }),
          }).describe("How many deliveries were queued"),
          ...errorResponses(400, 401, 404, 409, 413, 415),
        },
      },
    },
    async (request, reply) => {
      const { circuits, ...counts } = await replayWebhookDeliveries(conn, scopeOf(request), request.params.id, request.body);
      return reply.code(202).send({ ...counts, circuit: circuits[0] ?? null });
    },
  );
};
