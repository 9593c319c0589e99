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

// ── Storable input ──────────────────────────────────────────────────────────────────────
// Postgres text and jsonb hold neither NUL nor half of a UTF-16 surrogate pair: such input is
// refused here, naming its field, rather than failing in the database (a 500) or being
// replaced by U+FFFD on the way in (a changed value).

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// C0 controls and DEL; tab allowed where `tab` says so.
const CONTROL = /[\u0000-\u001f\u007f]/;
const CONTROL_BUT_TAB = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Why Postgres could not store or compare `s` unchanged; null when it can. */
export function textProblem(s: string): string | null {
  if (s.includes("\u0000")) return "expected text without NUL characters (\\u0000)";
  if (LONE_SURROGATE.test(s)) return "expected valid Unicode text; a lone surrogate (\\ud800-\\udfff) is not";
  return null;
}

/** The zod check every stored or queried string goes through. */
export const storable = z.superRefine<string>((s, ctx) => {
  const problem = textProblem(s);
  if (problem) ctx.addIssue({ code: "custom", message: problem, input: s });
});

/**
 * Storable and on one line: no control characters (tab allowed with `tab`). For values that end
 * up in a request line or header (URLs, tokens, passwords) or in one line of a listing (names).
 */
export const singleLine = (opts: { tab?: boolean } = {}) =>
  z.superRefine<string>((s, ctx) => {
    const problem = textProblem(s) ?? ((opts.tab ? CONTROL_BUT_TAB : CONTROL).test(s) ? "expected one line without control characters (CR, LF, NUL, …)" : null);
    if (problem) ctx.addIssue({ code: "custom", message: problem, input: s });
  });

/** Levels of objects and arrays a JSON value may nest (Postgres' own limit depends on its stack). */
export const MAX_JSON_DEPTH = 100;

export interface JsonProblem {
  path: (string | number)[];
  message: string;
}

/**
 * The first reason a JSON value (as JSON.parse returns it) cannot be stored as jsonb unchanged:
 * a key or string that is not storable text, a number beyond the double range (JSON.parse
 * makes 1e400 Infinity, which would be stored as null), or nesting deeper than MAX_JSON_DEPTH.
 * Iterative, so a value nested 100,000 deep cannot overflow the stack here.
 */
export function jsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): JsonProblem | null {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value: v, path } = item;
    if (typeof v === "string") {
      const problem = textProblem(v);
      if (problem) return { path, message: problem };
    } else if (typeof v === "number") {
      if (!Number.isFinite(v)) return { path, message: "expected a number within the double range (about ±1.8e308)" };
    } else if (typeof v === "object" && v !== null) {
      if (path.length >= maxDepth) return { path, message: `expected JSON nested at most ${maxDepth} levels deep` };
      if (Array.isArray(v)) {
        for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: [...path, i] });
      } else {
        const entries = Object.entries(v);
        for (let i = entries.length - 1; i >= 0; i--) {
          const [key, child] = entries[i] as [string, unknown];
          const problem = textProblem(key);
          if (problem) return { path: [...path, key], message: `key: ${problem}` };
          stack.push({ value: child, path: [...path, key] });
        }
      }
    }
  }
  return null;
}

/** The zod check for JSON values that are stored as given (test data, filters). */
export const storableJson = z.superRefine<unknown>((value, ctx) => {
  const problem = jsonProblem(value);
  if (problem) ctx.addIssue({ code: "custom", path: problem.path, message: problem.message, input: value });
});

/** An enum's values in a message: `expected method "POST", "PUT" or "PATCH"`. */
export function expectedOneOf(what: string, values: readonly string[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  const last = quoted.pop() ?? "";
  return `expected ${what} ${quoted.length > 0 ? `${quoted.join(", ")} or ${last}` : last}`;
}
