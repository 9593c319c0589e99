// /v1/webhooks/:id/backfills: send a tracked table's existing rows to one webhook (start, or
// count them (dry-run)), follow it, and pause, resume or cancel it. Each handler parses, calls
// services/backfills.ts, answers.
import { z } from "zod";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { backfillCountSchema, backfillCreateSchema, backfillViewSchema } from "../model/backfill";
import { strictObject } from "../model/validation";
import { changeBackfill, countBackfill, getBackfill, listBackfills, startBackfill, type BackfillAction } from "../services/backfills";
import type { ApiOptions } from "./app";
import { scopeOf } from "./auth";
import { errorResponses, idParams } from "./schemas";

const TAG = ["backfills"];

const backfillParams = strictObject({
  id: z.uuid({ error: "expected a webhook id such as 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f" }),
  bid: z.uuid({ error: "expected a backfill id such as 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f" }),
});

const ACTIONS: { action: BackfillAction; summary: string; description: string }[] = [
  {
    action: "cancel",
    summary: "Cancel a backfill",
    description: "Stops a running, paused or failed backfill for good; events it already wrote are still delivered. Cancelling twice is a no-op.",
  },
  {
    action: "pause",
    summary: "Pause a backfill",
    description: "The dispatcher stops after the batch it is writing; resume continues after the last row sent.",
  },
  {
    action: "resume",
    summary: "Resume a paused or failed backfill",
    description: "Continues after the last row sent (its cursor); rows already sent are not sent again.",
  },
];

export const backfillRoutes: FastifyPluginAsyncZod<ApiOptions> = async (app, { conn }) => {
  app.post(
    "/webhooks/:id/backfills",
    {
      schema: {
        tags: TAG,
        summary: "Send a tracked table's existing rows to this webhook",
        description:
          "Starts a backfill: every row of the table (matching `where`, admin keys only) becomes one <prefix>.backfill event " +
          "for this webhook alone (its tenant and filter apply, its event types do not), in primary-key order, in batches run " +
          "by the dispatcher, at most `rate` rows per second. A tenant key's backfill reads only its tenant's rows. " +
          "POST …/backfills/dry-run with the same body counts them instead.",
        params: idParams,
        body: backfillCreateSchema,
        response: { 201: backfillViewSchema.describe("The backfill, running"), ...errorResponses(400, 401, 404, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const b = await startBackfill(conn, scopeOf(request), request.params.id, request.body);
      return reply.code(201).header("location", `/v1/webhooks/${request.params.id}/backfills/${b.id}`).send(b);
    },
  );

  app.post(
    "/webhooks/:id/backfills/dry-run",
    {
      schema: {
        tags: TAG,
        summary: "Count the rows a backfill would send",
        description: "Checks the table and `where` as starting one would, and counts the rows; starts and writes nothing.",
        params: idParams,
        body: backfillCreateSchema,
        response: { 200: backfillCountSchema.describe("The rows that would be sent"), ...errorResponses(400, 401, 404, 413, 415) },
      },
    },
    async (request) => countBackfill(conn, scopeOf(request), request.params.id, request.body),
  );

  app.get(
    "/webhooks/:id/backfills",
    {
      schema: {
        tags: TAG,
        summary: "The webhook's backfills, newest first",
        params: idParams,
        response: { 200: z.object({ items: z.array(backfillViewSchema) }).describe("Its backfills"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => ({ items: await listBackfills(conn, scopeOf(request), request.params.id) }),
  );

  app.get(
    "/webhooks/:id/backfills/:bid",
    {
      schema: {
        tags: TAG,
        summary: "A backfill's progress",
        description: "rows_sent of rows_total, its state and the last key sent.",
        params: backfillParams,
        response: { 200: backfillViewSchema.describe("The backfill"), ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => getBackfill(conn, scopeOf(request), request.params.id, request.params.bid),
  );

  for (const { action, summary, description } of ACTIONS) {
    app.post(
      `/webhooks/:id/backfills/:bid/${action}`,
      {
        schema: {
          tags: TAG,
          summary,
          description,
          params: backfillParams,
          response: { 200: backfillViewSchema.describe("The backfill as changed"), ...errorResponses(400, 401, 404, 409) },
        },
      },
      async (request) => changeBackfill(conn, scopeOf(request), request.params.id, request.params.bid, action),
    );
  }
};
