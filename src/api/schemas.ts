// Shapes shared by the route files: path ids, paging, points in time, and the one error body.
// They feed both request validation and the OpenAPI document.
import { z } from "zod";
import { ERROR_CODES } from "../errors";
import { strictObject } from "../model/validation";
import { parseSince } from "../util/duration";

export const idParams = strictObject({
  id: z.uuid({ error: "expected an id such as 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f" }),
});

export const limitSchema = (def: number) =>
  z.coerce
    .number({ error: "expected a whole number from 1 to 1000" })
    .int({ error: "expected a whole number from 1 to 1000" })
    .min(1, { error: "expected a whole number from 1 to 1000" })
    .max(1000, { error: "expected a whole number from 1 to 1000" })
    .default(def)
    .meta({ description: "Items per page (1-1000)." });

export const cursorSchema = z
  .string()
  .max(500)
  .optional()
  .meta({ description: "next_cursor from the previous page." });

/** "2h" (that long ago) or an ISO timestamp, as on the CLI. */
export const whenSchema = z
  .string()
  .transform((text, ctx) => {
    try {
      return parseSince(text);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: e instanceof Error ? e.message : String(e) });
      return z.NEVER;
    }
  })
  .meta({ description: "A duration ago (30m, 2h, 7d) or an ISO timestamp.", examples: ["2h", "2025-01-31T09:00:00Z"] });

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    next_cursor: z.string().nullable().meta({ description: "Pass as cursor for the next page; null on the last page." }),
  });

export const errorSchema = z.object({
  error: z.object({
    code: z.enum(ERROR_CODES as [string, ...string[]]),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).meta({
      description: "One entry per problem, each naming its field path (for example filter.data.value.$gt).",
    }),
  }),
}).meta({ id: "Error" });

export type ErrorBody = z.output<typeof errorSchema>;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid input: broken JSON, wrong types, unknown fields, invalid filters or URLs",
  401: "Missing, unknown or revoked API key",
  404: "No such object for this key (another tenant's objects do not exist)",
  409: "The object's state does not allow it",
  413: "Body larger than the limit",
  415: "Body is not application/json",
  429: "Too many requests; wait for Retry-After seconds",
  503: "The database does not answer",
};

/** Error responses for a route's OpenAPI description. */
export function errorResponses<const C extends number>(...codes: C[]): Record<C, z.ZodType> {
  const out = {} as Record<C, z.ZodType>;
  for (const code of codes) out[code] = errorSchema.describe(ERROR_DESCRIPTIONS[code] ?? "Error");
  return out;
}
