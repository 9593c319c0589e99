// The OpenAPI document as the app serves it, generated without a database: what
// scripts/dump-openapi.ts writes to openapi.json and what the drift test compares.
import { loadConfig } from "../config";
import { connect } from "../db/connection";
import { createSender } from "../delivery/client";
import { createLogger } from "../logger";
import { buildApp } from "./app";

export async function openApiDocument(): Promise<unknown> {
  // Nothing connects: postgres.js and the HTTP agent are lazy, and no request is made.
  const conn = connect("postgres://openapi@127.0.0.1:1/unused", { max: 1 });
  const sender = createSender({ allowPrivateTargets: false });
  const logger = createLogger("silent", false);
  const app = buildApp({ conn, ctx: { conn, sender, logger }, config: loadConfig({}) });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    await sender.close();
    await conn.close();
  }
}

/** The committed form: two-space JSON with a final newline. */
export function formatOpenApi(doc: unknown): string {
  return JSON.stringify(doc, null, 2) + "\n";
}
