// /v1/inbound-sources (create, list, read, change, delete inbound sources; secrets are
// write-only) and /v1/inbound-events (list, read, replay), tenant-scoped like webhooks.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { INBOUND_STATUSES, sourceCreateSchema, sourcePatchSchema, sourceViewSchema } from "../model/inbound";
import { singleLine, storable, strictObject } from "../model/validation";
import { inboundEventDetailSchema, inboundEventViewSchema, getInboundEvent, listInboundEvents, replayInboundEvents } from "../services/inbound-events";
import { createSource, deleteSource, getSource, listSources, updateSource } from "../services/inbound-sources";
import type { ApiOptions } from "./app";
import { scopeOf } from "./auth";
import { cursorSchema, errorResponses, limitSchema, pageOf, whenSchema } from "./schemas";

const SOURCES = ["inbound sources"];
const EVENTS = ["inbound events"];

const sourceParams = strictObject({
  id: z.string().min(1).max(100).check(storable).meta({ description: "The source's id or slug." }),
});
const eventParams = strictObject({ id: z.string().min(1).max(30).meta({ description: "The event's id." }) });

const listQuery = strictObject({
  enabled: z
    .enum(["true", "false"], { error: "expected true or false" })
    .transform((v) => v === "true")
    .optional(),
  limit: limitSchema(100),
  cursor: cursorSchema,
});

const eventFilters = {
  source: z.string().max(63).check(storable).optional().meta({ description: "A source's slug." }),
  status: z.enum(INBOUND_STATUSES, { error: `expected one of ${INBOUND_STATUSES.join(", ")}` }).optional(),
  event: z.string().max(200).check(singleLine()).optional().meta({ description: "An event name, or a prefix ending in * (contact.*)." }),
  tenant: z.string().max(200).check(singleLine()).optional(),
  since: whenSchema.optional().meta({ description: "Received at or after: a duration ago (2h) or an ISO timestamp." }),
  until: whenSchema.optional().meta({ description: "Received before: a duration ago (30m) or an ISO timestamp." }),
};

const eventQuery = strictObject({ ...eventFilters, limit: limitSchema(50), cursor: cursorSchema });

const replayBody = strictObject({
  ...eventFilters,
  ids: z.array(z.string().regex(/^[1-9][0-9]{0,18}$/, { error: "expected an event id" })).min(1).max(10000).optional(),
}).prefault({});

const createdSchema = sourceViewSchema.extend({
  secret: z
    .string()
    .nullable()
    .meta({ description: "The secret pg-webhooks generated (standard, api_key, hmac without one given): shown here only. Null when you gave it." }),
});

export const inboundSourceRoutes: FastifyPluginAsyncZod<ApiOptions> = async (app, { conn }) => {
  app.post(
    "/inbound-sources",
    {
      schema: {
        tags: SOURCES,
        summary: "Create an inbound source",
        description:
          "Senders POST to /in/<slug>. verify says how requests are checked; secrets are write-only (a generated one is " +
          "returned here once).",
        body: sourceCreateSchema,
        response: { 201: createdSchema.describe("The source"), ...errorResponses(400, 401, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const { source, secret } = await createSource(conn, scopeOf(request), request.body);
      return reply.code(201).header("location", `/v1/inbound-sources/${source.id}`).send({ ...source, secret });
    },
  );

  app.get(
    "/inbound-sources",
    {
      schema: {
        tags: SOURCES,
        summary: "List inbound sources, oldest first",
        querystring: listQuery,
        response: { 200: pageOf(sourceViewSchema).describe("A page of sources"), ...errorResponses(400, 401) },
      },
    },
    async (request) => listSources(conn, scopeOf(request), request.query),
  );

  app.get(
    "/inbound-sources/:id",
    {
      schema: {
        tags: SOURCES,
        summary: "Get an inbound source (never its secrets)",
        params: sourceParams,
        response: { 200: sourceViewSchema.describe("The source"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => getSource(conn, scopeOf(request), request.params.id),
  );

  app.patch(
    "/inbound-sources/:id",
    {
      schema: {
        tags: SOURCES,
        summary: "Change an inbound source",
        description: "Only the fields given change. secrets: [new, old] accepts both while a sender switches over.",
        params: sourceParams,
        body: sourcePatchSchema,
        response: { 200: sourceViewSchema.describe("The source as changed"), ...errorResponses(400, 401, 404, 409, 413, 415) },
      },
    },
    async (request) => updateSource(conn, scopeOf(request), request.params.id, request.body),
  );

  app.delete(
    "/inbound-sources/:id",
    {
      schema: {
        tags: SOURCES,
        summary: "Delete an inbound source",
        description: "Its URL answers 404 from now on; its events stay until pruned.",
        params: sourceParams,
        response: { 204: z.null().describe("Deleted"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request, reply) => {
      await deleteSource(conn, scopeOf(request), request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    "/inbound-events",
    {
      schema: {
        tags: EVENTS,
        summary: "Inbound events, newest first",
        querystring: eventQuery,
        response: { 200: pageOf(inboundEventViewSchema).describe("A page of events"), ...errorResponses(400, 401) },
      },
    },
    async (request) => listInboundEvents(conn, scopeOf(request), request.query),
  );

  app.get(
    "/inbound-events/:id",
    {
      schema: {
        tags: EVENTS,
        summary: "An inbound event with its headers and exact body",
        params: eventParams,
        response: { 200: inboundEventDetailSchema.describe("The event"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => getInboundEvent(conn, scopeOf(request), request.params.id),
  );

  app.post(
    "/inbound-events/replay",
    {
      schema: {
        tags: EVENTS,
        summary: "Process matching events again",
        description:
          "Events of a relaying source are relayed again (a new outbound event each); the others return to pending for " +
          "SQL workers. Without ids or status, failed events are replayed. Events being processed are left alone.",
        body: replayBody,
        response: {
          202: z.object({ matched: z.number().int(), pending: z.number().int(), relayed: z.number().int(), failed: z.number().int() }).describe("What was replayed"),
          ...errorResponses(400, 401, 413, 415),
        },
      },
    },
    async (request, reply) => reply.code(202).send(await replayInboundEvents(conn, scopeOf(request), request.body)),
  );
};
