// Which events a webhook wants: event type patterns ("clients.*") and a small JSON filter
// language over the delivered body. Validation and matching are pure; fanout.ts applies them.
import { z } from "zod";
import { ExactNumber, compareDecimals, decimalOf, fitsDouble, toDecimal, type Decimal } from "../delivery/event-json";

// ── Event type patterns ─────────────────────────────────────────────────────────────────

export const eventPatternSchema = z
  .string({ error: "expected an event type such as clients.created, a pattern such as clients.* or *" })
  .max(200, { error: "expected an event type of at most 200 characters" })
  .regex(/^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$/, {
    error: "expected an event type such as clients.created, a pattern such as clients.* or *",
  });

/** Exact names, `prefix.*` (one or more further segments) and `*` (everything). */
export function typeMatches(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => {
    if (p === "*") return true;
    if (p.endsWith(".*")) {
      const prefix = p.slice(0, -1); // keeps the dot: "clients."
      return type.length > prefix.length && type.startsWith(prefix);
    }
    return p === type;
  });
}

// ── Filter language ─────────────────────────────────────────────────────────────────────

export type Scalar = string | number | boolean | null;

export interface Operators {
  $eq?: Scalar;
  $ne?: Scalar;
  $gt?: number | string;
  $gte?: number | string;
  $lt?: number | string;
  $lte?: number | string;
  $in?: Scalar[];
  $nin?: Scalar[];
  /** The field is an array holding this value. */
  $contains?: Scalar;
  /** The field is an array holding every one of these values. */
  $all?: Scalar[];
  $exists?: boolean;
}

/** A literal (shorthand for $eq) or an object of operators, all of which must hold. */
export type Condition = Scalar | Operators;

/** Keys are $and / $or / $not or a dotted field path; several keys in one object all must hold. */
export interface Filter {
  $and?: Filter[];
  $or?: Filter[];
  $not?: Filter;
  [field: string]: Condition | Filter | Filter[] | undefined;
}

export const FILTER_MAX_DEPTH = 10;
export const FILTER_MAX_NODES = 100;

const OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$contains", "$all", "$exists"] as const;
type Operator = (typeof OPERATORS)[number];
const LOGICAL = ["$and", "$or", "$not"] as const;
/** The first segment of a field path: the top-level keys of the delivered body. */
const ROOTS = ["data", "previous_attributes", "type", "tenant", "id", "timestamp"] as const;
/** Roots that are always strings (or null): array and number operators never hold on them. */
const STRING_ROOTS = ["type", "tenant", "id", "timestamp"] as const;

type Path = (string | number)[];
type Report = (path: Path, message: string) => void;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v));
}

/**
 * Null when a number operand means what it says. JSON.parse has already rounded a literal beyond
 * 2^53 or with more than 15 significant digits (9007199254740993 arrives as ...992), so those are
 * refused: written as a string of digits ("9007199254740993") they compare exactly.
 */
function numberProblem(v: unknown): string | null {
  // The API and the CLI read filters with parseExact: such a literal arrives as its digits.
  if (v instanceof ExactNumber) return roundedMessage(v.digits);
  if (typeof v !== "number" || !Number.isFinite(v)) return null;
  const d = toDecimal(String(v));
  if (d !== null && fitsDouble(d)) return null;
  return roundedMessage(String(v));
}

function roundedMessage(written: string): string {
  return `${written} is beyond 2^53 or has more than 15 significant digits, so it may already have been rounded when read; write it as a string of its exact digits, such as "9007199254740993"`;
}

/** The first inexact number among an operand (a scalar or an array of them). */
function operandNumberProblem(operand: unknown): string | null {
  for (const v of Array.isArray(operand) ? operand : [operand]) {
    const problem = numberProblem(v);
    if (problem !== null) return problem;
  }
  return null;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function isOperator(key: string): key is Operator {
  return (OPERATORS as readonly string[]).includes(key);
}

/** Walks a candidate filter once, reporting every problem with its path; stops at the size limits. */
class FilterChecker {
  private nodes = 0;
  private tooLarge = false;

  constructor(private readonly report: Report) {}

  filter(value: unknown, path: Path, depth: number): void {
    if (this.tooLarge) return;
    if (!isPlainObject(value)) {
      this.report(path, `expected a filter object such as {"data.stage": "won"}, got ${describe(value)}`);
      return;
    }
    if (depth > FILTER_MAX_DEPTH) {
      this.report(path, `filter is nested too deeply; at most ${FILTER_MAX_DEPTH} levels of $and, $or and $not`);
      return;
    }
    for (const [key, child] of Object.entries(value)) {
      if (!this.count()) return;
      const at = [...path, key];
      if (key === "$and" || key === "$or") {
        if (!Array.isArray(child) || child.length === 0) {
          this.report(at, `expected an array of filters, got ${Array.isArray(child) ? "an empty array" : describe(child)}`);
          continue;
        }
        child.forEach((f, i) => this.filter(f, [...at, i], depth + 1));
      } else if (key === "$not") {
        this.filter(child, at, depth + 1);
      } else if (key.startsWith("$")) {
        this.report(at, `unknown logical operator ${key}; expected one of ${LOGICAL.join(", ")} or a field path such as data.stage`);
      } else if (this.fieldPath(key, at)) {
        this.condition(child, at, (STRING_ROOTS as readonly string[]).includes(key));
      }
    }
  }

  /** One node per key of every filter object; false (reported once) past the limit. */
  private count(): boolean {
    if (this.tooLarge) return false;
    this.nodes += 1;
    if (this.nodes > FILTER_MAX_NODES) {
      this.tooLarge = true;
      this.report([], `filter is too large; at most ${FILTER_MAX_NODES} conditions in all, counting $and, $or and $not`);
      return false;
    }
    return true;
  }

  private fieldPath(key: string, at: Path): boolean {
    const segments = key.split(".");
    if (segments.some((s) => s === "")) {
      this.report(at, `expected a field path such as data.stage or data.items.0.sku, got ${JSON.stringify(key)}`);
      return false;
    }
    const root = segments[0] ?? "";
    if (!(ROOTS as readonly string[]).includes(root)) {
      this.report(at, `unknown field ${root}; paths start with ${ROOTS.join(", ")} (for example data.${key})`);
      return false;
    }
    return true;
  }

  /** `isString`: the path is one of the string roots (type, tenant, id, timestamp). */
  private condition(value: unknown, at: Path, isString: boolean): void {
    if (isScalar(value) || value instanceof ExactNumber) {
      const problem = numberProblem(value);
      if (problem !== null) this.report(at, problem);
      return;
    }
    if (!isPlainObject(value)) {
      this.report(at, `expected a string, number, boolean, null or an object of operators such as {"$gt": 10}, got ${describe(value)}`);
      return;
    }
    const entries = Object.entries(value);
    if (entries.length === 0) {
      this.report(at, `expected at least one operator: ${OPERATORS.join(", ")}`);
      return;
    }
    for (const [op, operand] of entries) {
      const opAt = [...at, op];
      if (!isOperator(op)) {
        this.report(opAt, `unknown operator ${op}; expected one of ${OPERATORS.join(", ")}`);
        continue;
      }
      const problem =
        operandNumberProblem(operand) ?? operandProblem(op, operand) ?? (isString ? stringRootProblem(op, operand, at) : null);
      if (problem !== null) this.report(opAt, problem);
    }
  }
}

/** Null when `op` can hold on a string field (type, tenant, id, timestamp). */
function stringRootProblem(op: Operator, operand: unknown, at: Path): string | null {
  const field = String(at[at.length - 1]);
  if (op === "$contains" || op === "$all") return `${field} is a string, not an array; ${op} applies to arrays (use $eq or $in)`;
  if ((op === "$gt" || op === "$gte" || op === "$lt" || op === "$lte") && typeof operand === "number") {
    return `${field} is a string; ${op} with a number never holds on it (compare with a string)`;
  }
  return null;
}

/** Null when `operand` suits `op`, otherwise the message. */
function operandProblem(op: Operator, operand: unknown): string | null {
  const got = `got ${describe(operand)}`;
  switch (op) {
    case "$eq":
    case "$ne":
      return isScalar(operand) ? null : `expected a string, number, boolean or null for ${op}, ${got}`;
    case "$gt":
    case "$gte":
    case "$lt":
    case "$lte":
      return typeof operand === "string" || (typeof operand === "number" && Number.isFinite(operand))
        ? null
        : `expected a number or string for ${op}, ${got}`;
    case "$in":
    case "$nin":
      return Array.isArray(operand) && operand.every(isScalar)
        ? null
        : `expected an array of strings, numbers, booleans or nulls for ${op}, ${Array.isArray(operand) ? "got an array holding other values" : got}`;
    case "$contains":
      return isScalar(operand)
        ? null
        : `expected one string, number, boolean or null for $contains, ${got}${Array.isArray(operand) ? "; for several values use $all" : ""}`;
    case "$all":
      return Array.isArray(operand) && operand.length > 0 && operand.every(isScalar)
        ? null
        : `expected a non-empty array of strings, numbers, booleans or nulls for $all, ${
            Array.isArray(operand) ? (operand.length === 0 ? "got an empty array" : "got an array holding other values") : got
          }`;
    case "$exists":
      return typeof operand === "boolean" ? null : `expected true or false for $exists, ${got}`;
  }
}

/**
 * A webhook's filter. One pass reports every problem at its path (["data.value", "$gt"]),
 * which a recursive z.lazy union could not do without burying them in union errors.
 */
export const filterSchema = z
  .custom<Filter>()
  .superRefine((value, ctx) => {
    new FilterChecker((path, message) => ctx.addIssue({ code: "custom", path, message })).filter(value, [], 1);
  })
  .meta({
    type: "object",
    description:
      'Matches the delivered body. Keys are field paths (data.stage, previous_attributes.value, type, tenant, data.items.0.sku) ' +
      'mapped to a literal or to operators ($eq $ne $gt $gte $lt $lte $in $nin $contains $all $exists), or $and/$or (arrays of filters) and $not. ' +
      'Numbers compare by exact decimal value; write one beyond 2^53 or with more than 15 significant digits as a string of digits ("9007199254740993"). ' +
      '$contains and $all test array fields; any other operator on an array, or one on the wrong JSON type, does not match.',
    examples: [
      { "data.stage": "won", "previous_attributes.stage": { $exists: true } },
      { "data.value": { $gt: 10000 } },
      { "data.tags": { $contains: "vip" } },
    ],
  });

/** Zod issues as `filter.data.value.$gt` paths, ready for an API error body or a CLI message. */
export function formatFilterIssues(error: z.ZodError, prefix = "filter"): { path: string; message: string }[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter((s) => s !== "").join("."),
    message: issue.message,
  }));
}

// ── Matching ────────────────────────────────────────────────────────────────────────────

export interface FilterBody {
  type: string;
  data: unknown;
  previous_attributes?: unknown;
  tenant?: string | null;
  [key: string]: unknown;
}

const MISSING = Symbol("missing");

/** Follows a dotted path; digits index arrays. Absent keys give MISSING (null is a value). */
function resolve(body: FilterBody, path: string): unknown {
  let current: unknown = body;
  for (const segment of path.split(".")) {
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(segment)) return MISSING;
      const index = Number(segment);
      if (index >= current.length) return MISSING;
      current = current[index];
    } else if (isPlainObject(current) && Object.prototype.hasOwnProperty.call(current, segment)) {
      current = current[segment];
    } else {
      return MISSING;
    }
    if (current === undefined) return MISSING;
  }
  return current;
}

type Numeric = number | ExactNumber;

function isNumeric(v: unknown): v is Numeric {
  return typeof v === "number" || v instanceof ExactNumber;
}

/** A string of digits ("9007199254740993", "-12.50"). */
const DECIMAL_STRING = /^-?\d+(?:\.\d+)?$/;

/**
 * An operand's decimal value when it is a number: a JSON number, or a string of digits that no
 * JSON number could carry exactly (validation sends users there). "12000" stays a string.
 */
function operandDecimal(operand: unknown): Decimal | null {
  if (isNumeric(operand)) return decimalOf(operand);
  if (typeof operand !== "string" || !DECIMAL_STRING.test(operand)) return null;
  const d = toDecimal(operand);
  return d !== null && !fitsDouble(d) ? d : null;
}

/** -1/0/1 for a numeric field against a numeric operand; null when they do not compare. */
function numericOrder(actual: Numeric, operand: unknown): -1 | 0 | 1 | null {
  if (typeof actual === "number" && typeof operand === "number") return actual < operand ? -1 : actual > operand ? 1 : 0;
  const right = operandDecimal(operand);
  return right === null ? null : compareDecimals(decimalOf(actual), right);
}

/** Equality as filters see it: numbers by exact decimal value, everything else strictly. */
function same(actual: unknown, operand: unknown): boolean {
  if (isNumeric(actual)) return numericOrder(actual, operand) === 0;
  return actual === operand;
}

function compare(op: "$gt" | "$gte" | "$lt" | "$lte", actual: unknown, operand: unknown): boolean {
  // Only like with like: a string is never greater than a number (digits given as a string for a big number are a number).
  if (isNumeric(actual)) {
    const order = numericOrder(actual, operand);
    return order !== null && ordered(op, order, 0);
  }
  if (typeof actual === "string" && typeof operand === "string") return ordered(op, actual, operand);
  return false;
}

function ordered<T extends number | string>(op: "$gt" | "$gte" | "$lt" | "$lte", a: T, b: T): boolean {
  switch (op) {
    case "$gt":
      return a > b;
    case "$gte":
      return a >= b;
    case "$lt":
      return a < b;
    case "$lte":
      return a <= b;
  }
}

function isIn(actual: unknown, list: unknown): boolean {
  return actual !== MISSING && Array.isArray(list) && list.some((v) => same(actual, v));
}

function contains(actual: unknown, value: unknown): boolean {
  return Array.isArray(actual) && actual.some((v) => same(v, value));
}

function conditionHolds(condition: unknown, actual: unknown): boolean {
  if (!isPlainObject(condition)) return actual !== MISSING && same(actual, condition);
  return Object.entries(condition).every(([op, operand]) => {
    switch (op) {
      case "$eq":
        return actual !== MISSING && same(actual, operand);
      case "$ne":
        return actual === MISSING || !same(actual, operand);
      case "$gt":
      case "$gte":
      case "$lt":
      case "$lte":
        return compare(op, actual, operand);
      case "$in":
        return isIn(actual, operand);
      case "$nin":
        return !isIn(actual, operand);
      case "$contains":
        return contains(actual, operand);
      case "$all":
        return Array.isArray(operand) && operand.length > 0 && operand.every((v) => contains(actual, v));
      case "$exists":
        return (actual !== MISSING) === operand;
      default:
        return false; // unknown operator: validation keeps these out; never match on one
    }
  });
}

function holds(filter: unknown, body: FilterBody): boolean {
  if (!isPlainObject(filter)) return false;
  return Object.entries(filter).every(([key, value]) => {
    switch (key) {
      case "$and":
        return Array.isArray(value) && value.every((f) => holds(f, body));
      case "$or":
        return Array.isArray(value) && value.some((f) => holds(f, body));
      case "$not":
        return isPlainObject(value) && !holds(value, body);
      default:
        return conditionHolds(value, resolve(body, key));
    }
  });
}

/**
 * True when the body satisfies the filter; a null or absent filter matches everything.
 * A missing path fails $eq, $gt…, $in, $contains and $all, and satisfies $ne and $nin; null is
 * a present value. Numbers (ExactNumber too) compare by exact decimal value. An operator on the
 * wrong JSON type does not hold: $contains/$all on a non-array, $gt on a boolean, an array
 * compared with $eq or $in (which compare the field itself; $contains looks inside).
 */
export function matches(filter: Filter | null | undefined, body: FilterBody): boolean {
  if (filter === null || filter === undefined) return true;
  return holds(filter, body);
}
