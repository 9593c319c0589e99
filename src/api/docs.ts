// The OpenAPI document, generated from the routes' zod schemas, served at /openapi.json and
// rendered by Swagger UI at /docs. Neither needs a key.
import type { FastifyInstance } from "fastify";
import swagger, { type SwaggerTransformObject } from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";

const { version } = require("../../package.json") as { version: string };

const DESCRIPTION = `Outgoing webhooks for applications that write straight to Postgres.

Every route under /v1 except /v1/health needs \`Authorization: Bearer <key>\` (create keys with
\`pg-webhooks keys create\`). A tenant key sees only its own tenant's webhooks and deliveries; anything
else answers 404. Every failure answers \`{"error": {"code", "message", "details"}}\`.`;

function collectRefs(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) collectRefs(v, into);
  } else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string" && v.startsWith("#/components/schemas/")) into.add(v.slice(21));
      else collectRefs(v, into);
    }
  }
}

/**
 * The zod transform emits every registered schema twice (as read and as written, e.g.
 * Webhook and WebhookInput); keep only the ones some route refers to, without the
 * JSON Schema bookkeeping ($schema, $id) that OpenAPI does not need.
 */
const transformObject: SwaggerTransformObject = (input) => {
  const doc = jsonSchemaTransformObject(input) as { components?: { schemas?: Record<string, Record<string, unknown>> } };
  const all = doc.components?.schemas;
  if (!all) return doc;
  const { components, ...rest } = doc;
  const used = new Set<string>();
  collectRefs(rest, used);
  for (let grew = true; grew; ) {
    const before = used.size;
    for (const name of [...used]) collectRefs(all[name], used);
    grew = used.size > before;
  }
  const schemas = Object.fromEntries(
    Object.entries(all)
      .filter(([name]) => used.has(name))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, { $schema: _s, $id: _i, ...schema }]) => [name, schema]),
  );
  return { ...doc, components: { ...components, schemas } } as ReturnType<SwaggerTransformObject>;
};

export function registerDocs(app: FastifyInstance): void {
  app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "pg-webhooks", version, description: DESCRIPTION },
      tags: [
        { name: "webhooks", description: "Where events go and how" },
        { name: "deliveries", description: "What was sent, and sending it again" },
        { name: "backfills", description: "Sending a table's existing rows to one webhook" },
        { name: "event types", description: "What there is to subscribe to" },
        { name: "health", description: "Liveness" },
      ],
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An API key: pgw_…" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject,
  });
  app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());
}
