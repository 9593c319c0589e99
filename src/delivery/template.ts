// JSONata templates, guarded: a template is code a webhook's owner writes and the dispatcher
// runs per delivery, so it is compiled once, refused when it could escape its limits, and run
// with a deadline, a depth limit, bounded allocations and an output limit. It only ever
// yields a body: the URL, method and headers are not its to change.
import jsonata from "jsonata";
import { MAX_TEMPLATE_CHARS } from "../model/payload";

/**
 * A render's deadline, counted in evaluation steps rather than wall time, so a machine that is
 * busy (or a pause for garbage collection) never fails a template that is not: on the loaded
 * test machine a 20-step Slack template took up to 119 ms of wall time now and then, while
 * 50,000 steps of a runaway loop take 46–110 ms of CPU.
 */
export const TEMPLATE_MAX_STEPS = 50_000;
/**
 * Wall time after which a render stops anyway (checked every 1,024 steps). Reaching it says the
 * machine is overloaded, not that the template is wrong: the delivery is tried again later.
 */
export const TEMPLATE_WALL_MS = 2_000;
/** Deepest evaluation (nested calls and constructors) a render may reach. */
export const TEMPLATE_MAX_DEPTH = 300;
/** Longest sequence or array a render may build, ranges included (event data may hold long arrays). */
export const TEMPLATE_MAX_SEQUENCE = 100_000;
/** Largest body a template may produce, and so the largest string it may build on the way. */
export const MAX_BODY_CHARS = 256 * 1024;
/**
 * Characters of strings a render may build in all (padding, joins, replacements, $string and
 * concatenation): each string stays under the body limit, and this bounds how many of them.
 */
export const TEMPLATE_MAX_ALLOCATED_CHARS = 8 * 1024 * 1024;
/** Range literals ([1..n]) longer than this are refused when saved. */
const MAX_RANGE_LITERAL = 1000;
/** Deepest syntax tree accepted (a template nested deeper than this is not a body). */
const MAX_AST_DEPTH = 150;

/** Why a template cannot be used or could not render. `position` is a character offset in the source. */
export class TemplateError extends Error {
  override name = "TemplateError";
  constructor(
    message: string,
    /**
     * syntax: does not compile; policy: compiles but is refused; limit: a guard cut it off;
     * runtime: it failed on this input; slow: the machine was too busy to finish it in time (try again).
     */
    readonly kind: "syntax" | "policy" | "limit" | "runtime" | "slow",
    readonly position?: number,
  ) {
    super(message);
  }
}

/** A guard's error: thrown from inside an evaluation, recognised on the way out. */
class LimitExceeded extends Error {
  override name = "LimitExceeded";
}

/** The wall-clock backstop: thrown from inside an evaluation when the machine is too slow. */
class TooSlow extends Error {
  override name = "TooSlow";
}

interface JsonataError {
  code?: string;
  position?: number;
  token?: string;
  message?: string;
}

const isJsonataError = (e: unknown): e is JsonataError => typeof e === "object" && e !== null && "code" in e;

// JSONata's own guard codes: stack depth, sequence and range size.
const LIMIT_CODES = new Set(["D1011", "D2014", "D2015"]);

type Builtin = { implementation: (this: unknown, ...args: unknown[]) => unknown };
let builtins: Promise<Record<"string" | "replace", Builtin>> | null = null;

/** JSONata's own $string and $replace, wrapped below with size checks (they are not exported). */
function builtinFunctions(): Promise<Record<"string" | "replace", Builtin>> {
  builtins ??= jsonata('{"string": $string, "replace": $replace}').evaluate({}) as Promise<Record<"string" | "replace", Builtin>>;
  return builtins;
}

/**
 * At most how many characters JSON text of `v` takes, counted until it passes `limit` (then
 * limit + 1): so that nothing builds a string the process cannot hold before it is refused.
 */
export function jsonCharsAtMost(v: unknown, limit: number): number {
  let total = 0;
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === "string") total += x.length + 2;
    else if (typeof x === "number" || typeof x === "boolean" || x === null || x === undefined) total += 24;
    else if (Array.isArray(x)) {
      total += x.length + 2;
      for (const y of x) stack.push(y);
    } else if (typeof x === "object") {
      for (const [k, y] of Object.entries(x as Record<string, unknown>)) {
        total += k.length + 4;
        stack.push(y);
      }
    }
    if (total > limit) return limit + 1;
  }
  return total;
}

function tooLarge(what: string): LimitExceeded {
  return new LimitExceeded(`${what} would exceed ${MAX_BODY_CHARS} characters (the body limit)`);
}

/** Every node of the syntax tree, with its depth; throws past MAX_AST_DEPTH. */
function* astNodes(ast: unknown): Generator<{ node: Record<string, unknown>; depth: number }> {
  const stack: { v: unknown; depth: number }[] = [{ v: ast, depth: 0 }];
  while (stack.length > 0) {
    const { v, depth } = stack.pop() as { v: unknown; depth: number };
    if (depth > MAX_AST_DEPTH * 4) throw new TemplateError(`the template is nested more than ${MAX_AST_DEPTH} levels deep`, "policy");
    if (Array.isArray(v)) {
      for (const x of v) stack.push({ v: x, depth: depth + 1 });
    } else if (typeof v === "object" && v !== null) {
      const node = v as Record<string, unknown>;
      yield { node, depth };
      for (const [k, x] of Object.entries(node)) {
        // Tuple streams and parent slots point back up the tree.
        if (k === "slot" || k === "ancestor" || k === "tuple") continue;
        if (typeof x === "object" && x !== null) stack.push({ v: x, depth: depth + 1 });
      }
    }
  }
}

/** Refuses what no body needs and a hostile template would: $eval, long range literals, deep nesting. */
function checkPolicy(ast: unknown): void {
  for (const { node } of astNodes(ast)) {
    const position = typeof node.position === "number" ? node.position : undefined;
    if (node.type === "variable" && node.value === "eval") {
      throw new TemplateError("$eval is not available in templates", "policy", position);
    }
    if (node.type === "binary" && node.value === "..") {
      const lhs = node.lhs as { type?: string; value?: unknown } | undefined;
      const rhs = node.rhs as { type?: string; value?: unknown } | undefined;
      if (lhs?.type === "number" && rhs?.type === "number" && Number(rhs.value) - Number(lhs.value) >= MAX_RANGE_LITERAL) {
        throw new TemplateError(`range literals are limited to ${MAX_RANGE_LITERAL} items`, "policy", position);
      }
    }
  }
}

export interface CompiledTemplate {
  source: string;
  evaluate(input: unknown, bindings: Record<string, unknown>): Promise<unknown>;
}

type RegexMatch = { match: string; next(): RegexMatch | undefined };

/**
 * True when replacing every match of `pattern` (a string, or a JSONata regex) in `str`, up to
 * `limit` matches, with `replacement` could pass the body limit. Counting stops as soon as it
 * could, so a string of 100,000 matches is not walked to the end first.
 */
async function replaceTooLarge(str: string, pattern: unknown, replacement: string, limit: number | undefined): Promise<boolean> {
  const max = limit ?? Number.POSITIVE_INFINITY;
  // Each $0, $1… in the replacement inserts (part of) the match.
  const dollars = replacement.split("$").length - 1;
  let size = str.length;
  let count = 0;
  if (typeof pattern === "string") {
    if (pattern === "") return false; // JSONata refuses it
    const each = replacement.length + dollars * pattern.length;
    for (let i = str.indexOf(pattern); i >= 0 && count < max; i = str.indexOf(pattern, i + pattern.length)) {
      count++;
      if ((size += each) > MAX_BODY_CHARS) return true;
    }
    return false;
  }
  if (typeof pattern === "function") {
    // JSONata hands a regex over wrapped in an async function; its matches' next() is synchronous.
    for (let m = await (pattern as (s: string) => Promise<RegexMatch | undefined>)(str); m !== undefined && count < max; m = m.next()) {
      count++;
      if ((size += replacement.length + dollars * m.match.length) > MAX_BODY_CHARS) return true;
      if (m.match.length === 0) break; // JSONata refuses it (D1004)
    }
  }
  return false;
}

const ENTRY_HOOK = Symbol.for("jsonata.__evaluate_entry");
const EXIT_HOOK = Symbol.for("jsonata.__evaluate_exit");
// Per-evaluation counters live on JSONata's evaluation frame (environment.base): one per
// evaluate() call, so renders of the same compiled template never share them.
const STEPS = Symbol("steps");
const STARTED = Symbol("started");
const ALLOCATED = Symbol("allocated");
type Frame = { base: Record<symbol, number> };
/** What JSONata passes as `this` to a registered function (its environment is a Frame). */
type Focus = { environment: unknown };

/** Counts characters a render built against TEMPLATE_MAX_ALLOCATED_CHARS. */
function charge(env: unknown, chars: number): void {
  const base = (env as Frame | undefined)?.base;
  if (base === undefined) return;
  const total = (base[ALLOCATED] ?? 0) + chars;
  base[ALLOCATED] = total;
  if (total > TEMPLATE_MAX_ALLOCATED_CHARS) {
    throw new LimitExceeded(`the template built more than ${TEMPLATE_MAX_ALLOCATED_CHARS} characters of strings`);
  }
}

function guarded(source: string): { compiled: CompiledTemplate; ast: unknown } {
  const expr = jsonata(source, { stack: TEMPLATE_MAX_DEPTH, sequence: TEMPLATE_MAX_SEQUENCE });
  const assign = expr.assign as unknown as (name: symbol, value: unknown) => void;
  assign(ENTRY_HOOK, (_e: unknown, _i: unknown, env: Frame) => {
    const base = env.base;
    const steps = (base[STEPS] ?? 0) + 1;
    base[STEPS] = steps;
    if (steps === 1) base[STARTED] = Date.now();
    if (steps > TEMPLATE_MAX_STEPS) throw new LimitExceeded(`the template ran past ${TEMPLATE_MAX_STEPS} evaluation steps (its deadline)`);
    if ((steps & 1023) === 0 && Date.now() - (base[STARTED] ?? 0) > TEMPLATE_WALL_MS) {
      throw new TooSlow(`the render took over ${TEMPLATE_WALL_MS} ms after ${steps} steps: the dispatcher is overloaded`);
    }
  });
  // Every evaluation step's result: no string past the body limit, no array past the sequence limit.
  assign(EXIT_HOOK, (e: { type?: string; value?: unknown }, _i: unknown, env: Frame, result: unknown) => {
    if (typeof result === "string" && result.length > MAX_BODY_CHARS) throw tooLarge("a string");
    if (typeof result === "string" && e.type === "binary" && e.value === "&") charge(env, result.length);
    if (Array.isArray(result) && result.length > TEMPLATE_MAX_SEQUENCE) {
      throw new LimitExceeded(`an array would exceed ${TEMPLATE_MAX_SEQUENCE} items`);
    }
  });
  expr.registerFunction(
    "pad",
    function (this: Focus, str: string | undefined, width: number, char?: string) {
      if (str === undefined) return undefined;
      const w = Math.trunc(width);
      if (!Number.isFinite(w) || Math.abs(w) > MAX_BODY_CHARS) throw tooLarge("$pad");
      const c = char === undefined || char.length === 0 ? " " : char;
      const n = Math.abs(w) - [...str].length;
      if (n <= 0) return str;
      charge(this.environment, n);
      const padding = c.repeat(Math.ceil(n / c.length)).slice(0, n);
      return w > 0 ? str + padding : padding + str;
    },
    "<s-ns?:s>",
  );
  expr.registerFunction(
    "join",
    function (this: Focus, strs: string[] | undefined, separator?: string) {
      if (strs === undefined) return undefined;
      const sep = separator ?? "";
      let total = 0;
      for (const s of strs) {
        total += s.length + sep.length;
        if (total > MAX_BODY_CHARS + sep.length) throw tooLarge("$join");
      }
      charge(this.environment, total);
      return strs.join(sep);
    },
    "<a<s>s?:s>",
  );
  expr.registerFunction(
    "string",
    async function (this: Focus, arg: unknown, prettify?: boolean) {
      if (typeof arg === "object" && arg !== null && jsonCharsAtMost(arg, MAX_BODY_CHARS) * (prettify ? 2 : 1) > MAX_BODY_CHARS) {
        throw tooLarge("$string");
      }
      const out = (await builtinFunctions()).string.implementation.call(this, arg, prettify);
      if (typeof out === "string") charge(this.environment, out.length);
      return out;
    },
    "<x-b?:s>",
  );
  expr.registerFunction(
    "replace",
    async function (this: Focus, str: string | undefined, pattern: unknown, replacement: unknown, limit?: number) {
      // A string replacement is counted first: 100,000 matches of a 10,000-character replacement
      // would be a gigabyte before any check saw it. A function's results pass the exit hook.
      if (typeof str === "string" && typeof replacement === "string" && (await replaceTooLarge(str, pattern, replacement, limit))) {
        throw tooLarge("$replace");
      }
      const out = await (await builtinFunctions()).replace.implementation.call(this, str, pattern, replacement, limit);
      if (typeof out === "string" && out.length > MAX_BODY_CHARS) throw tooLarge("$replace");
      if (typeof out === "string") charge(this.environment, out.length);
      return out;
    },
    "<s-(sf)(sf)n?:s>",
  );
  // Refused when saved too; bound here as well so no path reaches the built-in one.
  expr.registerFunction(
    "eval",
    () => {
      throw new LimitExceeded("$eval is not available in templates");
    },
    "<sx?:x>",
  );
  return {
    compiled: { source, evaluate: (input, bindings) => expr.evaluate(input, bindings) as Promise<unknown> },
    ast: expr.ast(),
  };
}

/**
 * Compiles a template, or throws a TemplateError naming the position: a syntax error, or
 * something refused ($eval, a range literal over 1,000 items, nesting deeper than 150 levels,
 * more than 16 KB of source).
 */
export function compileTemplate(source: string): CompiledTemplate {
  if (source.length > MAX_TEMPLATE_CHARS) {
    throw new TemplateError(`the template has ${source.length} characters; at most ${MAX_TEMPLATE_CHARS} are allowed`, "policy");
  }
  let compiled: CompiledTemplate;
  let ast: unknown;
  try {
    ({ compiled, ast } = guarded(source));
  } catch (e) {
    if (e instanceof RangeError) throw new TemplateError(`the template is nested too deeply to compile`, "policy");
    if (isJsonataError(e)) {
      const at = typeof e.position === "number" ? ` at position ${e.position}` : "";
      throw new TemplateError(`syntax error${at}: ${e.message ?? e.code}`, "syntax", e.position);
    }
    throw e;
  }
  checkPolicy(ast);
  return compiled;
}

// Compiled once per distinct source; the dispatcher renders the same few templates over and over.
const cache = new Map<string, CompiledTemplate | TemplateError>();
const CACHE_MAX = 500;

/** compileTemplate, cached by source (errors too). */
export function cachedTemplate(source: string): CompiledTemplate {
  let t = cache.get(source);
  if (t === undefined) {
    try {
      t = compileTemplate(source);
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      t = e;
    }
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(source, t);
  }
  if (t instanceof TemplateError) throw t;
  return t;
}

// Renders run one at a time. An evaluation never yields to I/O (its awaits are microtasks), but
// two started together interleave step by step: in turn, a runaway template delays the others
// by at most its own deadline, and the wall-clock backstop measures one render's time only.
let turn: Promise<unknown> = Promise.resolve();

/**
 * Runs a template on one input. Throws TemplateError: "limit" when a guard cut it off (deadline,
 * depth, sizes), "runtime" when the template failed on this input or produced no JSON value.
 */
export function evaluateTemplate(t: CompiledTemplate, input: unknown, bindings: Record<string, unknown>): Promise<unknown> {
  const run = turn.then(() => evaluateNow(t, input, bindings));
  turn = run.catch(() => undefined);
  return run;
}

async function evaluateNow(t: CompiledTemplate, input: unknown, bindings: Record<string, unknown>): Promise<unknown> {
  let result: unknown;
  try {
    result = await t.evaluate(input, bindings);
  } catch (e) {
    if (e instanceof LimitExceeded) throw new TemplateError(`template cut off: ${e.message}`, "limit");
    if (e instanceof TooSlow) throw new TemplateError(`template not finished: ${e.message}`, "slow");
    if (e instanceof RangeError) throw new TemplateError(`template cut off: ${e.message}`, "limit");
    if (isJsonataError(e)) {
      const at = typeof e.position === "number" ? ` at position ${e.position}` : "";
      const kind = LIMIT_CODES.has(e.code ?? "") ? "limit" : "runtime";
      // JSONata's D2015 message names the size it was asked for as if it were the limit.
      const message = e.code === "D2015" ? `a sequence would exceed ${TEMPLATE_MAX_SEQUENCE} items` : (e.message ?? e.code);
      throw new TemplateError(`${kind === "limit" ? "template cut off" : "template failed"}${at}: ${message}`, kind, e.position);
    }
    throw new TemplateError(`template failed: ${e instanceof Error ? e.message : String(e)}`, "runtime");
  }
  if (result === undefined) throw new TemplateError("the template produced no value for this event", "runtime");
  if (typeof result === "function" || (typeof result === "object" && result !== null && "_jsonata_lambda" in result)) {
    throw new TemplateError("the template produced a function, not a JSON value", "runtime");
  }
  if (jsonCharsAtMost(result, MAX_BODY_CHARS) > MAX_BODY_CHARS) throw new TemplateError(`template cut off: ${tooLarge("the body").message}`, "limit");
  return result;
}
