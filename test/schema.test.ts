// sql/schema.sql is the committed picture of the schema; it must match the migrations.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describeSchema } from "../src/db/describe";
import { createTestDatabase, type TestDatabase } from "./helpers/db";

let t: TestDatabase;
beforeAll(async () => (t = await createTestDatabase()));
afterAll(() => t.close());

it("matches the committed sql/schema.sql (run `npm run gen:schema` after changing a migration)", async () => {
  const committed = readFileSync(join(__dirname, "..", "sql", "schema.sql"), "utf8");
  expect(await describeSchema(t.sql)).toBe(committed);
});
