// Zod issues as domain errors: one detail per problem, each naming its field path
// (`filter.data.value.$gt`, `headers.X-Api-Key`), so the API and the CLI say exactly what is wrong.
import { z } from "zod";
import { DomainError, type ErrorDetail } from "../errors";

export type PathPrefix = (string | number)[];

/** One detail per issue; an unknown-keys issue becomes one detail per unknown field. */
export function issueDetails(error: z.ZodError, prefix: PathPrefix = [], what = "input"): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const issue of error.issues) {
    const base = [...prefix, ...issue.path].map(String);
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) out.push({ path: [...base, key].join("."), message: issue.message });
    } else {
      out.push({ path: base.join(".") || what, message: issue.message });
    }
  }
  return out;
}

/** `invalid_filter` when every problem lies inside `filter`, `invalid_input` otherwise. */
export function inputError(error: z.ZodError, prefix: PathPrefix = [], what = "input"): DomainError {
  const details = issueDetails(error, prefix, what);
  const onlyFilter = details.length > 0 && details.every((d) => d.path === "filter" || d.path.startsWith("filter."));
  const first = details[0];
  const head = first ? `${first.path}: ${first.message}` : `invalid ${what}`;
  const more = details.length > 1 ? ` (and ${details.length - 1} more problem${details.length > 2 ? "s" : ""})` : "";
  return new DomainError(onlyFilter ? "invalid_filter" : "invalid_input", head + more, details);
}

/** Parses or throws inputError. */
export function parseInput<S extends z.ZodType>(schema: S, raw: unknown, prefix: PathPrefix = []): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) throw inputError(result.error, prefix);
  return result.data;
}

/**
 * A strict object whose unknown-field message lists the fields it accepts, so
 * `{"urll": …}` answers "unknown field; expected one of name, url, …".
 */
export function strictObject<T extends z.ZodRawShape>(shape: T) {
  const names = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) => (issue.code === "unrecognized_keys" ? `unknown field; expected one of ${names}` : undefined),
  });
}
