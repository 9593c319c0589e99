// Writes openapi.json from the app's routes and zod schemas (npm run gen:openapi).
// A test fails when the committed copy differs, so every API contract change shows in review.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatOpenApi, openApiDocument } from "../src/api/openapi";

async function main(): Promise<void> {
  const target = join(__dirname, "..", "openapi.json");
  writeFileSync(target, formatOpenApi(await openApiDocument()));
  process.stdout.write(`wrote ${target}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
