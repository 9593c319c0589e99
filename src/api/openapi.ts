// The OpenAPI document as the app serves it, generated without a database: what
// scripts/dump-openapi.ts writes to openapi.json and what the drift test compares.
import { loadConfig } from "../config";
import { createCore } from "../core";
import { createLogger } from "../logger";
import { buildApp } from "./app";

export async function openApiDocument(): Promise<unknown> {
  // A core with no database: building the routes queries nothing, and any query would throw.
  const core = createCore(loadConfig({}), { database: null, logger: createLogger("silent", false) });
  try {
    const { ctx } = core.sending();
    const app = buildApp({ conn: core.conn, ctx, config: core.config });
    core.defer("the API", () => app.close());
    await app.ready();
    return app.swagger();
  } finally {
    await core.close();
  }
}

/** The committed form: two-space JSON with a final newline. */
export function formatOpenApi(doc: unknown): string {
  return JSON.stringify(doc, null, 2) + "\n";
}
