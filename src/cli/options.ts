// Option parsers and the options every command shares. A parser throws commander's
// InvalidArgumentError, so a bad value exits 2 with a message naming the flag.
import { InvalidArgumentError, type Command } from "commander";
import { parseExact } from "../delivery/event-json";
import { DomainError } from "../errors";
import { jsonProblem } from "../model/validation";
import { parseDuration, parseSince } from "../util/duration";

export interface CommonOptions {
  databaseUrl?: string;
  json?: boolean;
}

/** Adds --database-url and --json, and an example to the help text. */
export function common(cmd: Command, ...examples: string[]): Command {
  cmd
    .option("--database-url <url>", "Postgres URL (overrides DATABASE_URL; default: an embedded Postgres under ./.pg-webhooks)")
    .option("--json", "print machine-readable JSON on stdout (notices go to stderr)");
  if (examples.length > 0) {
    cmd.addHelpText("after", `\nExample${examples.length > 1 ? "s" : ""}:\n${examples.map((e) => `  $ ${e}`).join("\n")}\n`);
  }
  return cmd;
}

const wrap =
  <T>(fn: (text: string) => T) =>
  (text: string): T => {
    try {
      return fn(text);
    } catch (e) {
      throw new InvalidArgumentError(e instanceof Error ? e.message : String(e));
    }
  };

/** "15s" → 15000 */
export const durationMs = wrap(parseDuration);
/** "2h" → two hours ago; ISO → that instant. */
export const when = wrap((t) => parseSince(t));

export function integer(min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\s*-?\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
}

export function positiveNumber(text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a number above 0, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** "a, b,c" → ["a","b","c"]; repeated flags accumulate. */
export function list(text: string, previous: string[] = []): string[] {
  const items = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) throw new InvalidArgumentError(`expected a comma-separated list, got ${JSON.stringify(text)}`);
  return [...previous, ...items];
}

/** One of `values`, matched case-insensitively and returned as spelled in `values`. */
export function oneOf<T extends string>(values: readonly T[]) {
  return (text: string): T => {
    const v = text.trim().toLowerCase();
    const found = values.find((x) => x.toLowerCase() === v);
    if (found === undefined) {
      throw new InvalidArgumentError(`expected one of ${values.join(", ")}, got ${JSON.stringify(text)}`);
    }
    return found;
  };
}

export function listOf<T extends string>(values: readonly T[]) {
  const one = oneOf(values);
  return (text: string, previous: T[] = []): T[] => [...previous, ...list(text).map(one)];
}

/** Collects a repeatable flag. */
export function collect(text: string, previous: string[] = []): string[] {
  return [...previous, text];
}

/** 'Name: value' → ["Name", "value"] */
export function headerPair(text: string): [string, string] {
  const i = text.indexOf(":");
  const name = i < 0 ? "" : text.slice(0, i).trim();
  if (i < 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new InvalidArgumentError(`expected 'Header-Name: value', got ${JSON.stringify(text)}`);
  }
  return [name, text.slice(i + 1).trim()];
}

export function collectHeaders(text: string, previous: [string, string][] = []): [string, string][] {
  return [...previous, headerPair(text)];
}

/**
 * JSON as the API reads it: a number a double would change stays exact (ExactNumber), so a
 * filter refuses it by name and event data keeps its digits. `checked`: what Postgres cannot
 * store (NUL, 1e400, deep nesting) is refused here with its path, for commands whose input no
 * schema checks later (emit).
 */
export function jsonValue(text: string, checked = false): unknown {
  let value: unknown;
  try {
    value = parseExact(text).value;
  } catch (e) {
    throw new InvalidArgumentError(`expected JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const problem = checked ? jsonProblem(value) : null;
  if (problem) throw new InvalidArgumentError(problem.path.length > 0 ? `${problem.path.join(".")}: ${problem.message}` : problem.message);
  return value;
}

export function jsonObject(text: string): Record<string, unknown> {
  const v = jsonValue(text);
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new InvalidArgumentError(`expected a JSON object, got ${JSON.stringify(text)}`);
  }
  return v as Record<string, unknown>;
}

export function uuid(text: string): string {
  const v = text.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v)) {
    throw new InvalidArgumentError(`expected an id such as 3f2b8c1e-…-…, got ${JSON.stringify(text)}`);
  }
  return v;
}

export function collectUuids(text: string, previous: string[] = []): string[] {
  return [...previous, ...list(text).map(uuid)];
}

/** Rewrites a DomainError's field paths (API names) to the flags that set them. */
export function withFlagNames(e: unknown, flags: Record<string, string>): unknown {
  if (!(e instanceof DomainError)) return e;
  const rename = (path: string) => {
    const head = path.split(/[.[]/)[0] ?? path;
    const flag = flags[head];
    return flag === undefined ? path : path === head ? flag : `${flag} (${path})`;
  };
  let message = e.message;
  const m = /^([A-Za-z_][^:\s]*): /.exec(message);
  if (m?.[1] !== undefined) message = `${rename(m[1])}: ${message.slice(m[0].length)}`;
  return new DomainError(
    e.code,
    message,
    e.details.map((d) => ({ path: rename(d.path), message: d.message })),
  );
}
