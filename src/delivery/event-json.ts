// Event data as exact JSON: parses the jsonb text Postgres sends without changing any number,
// and writes bodies so that JSON.stringify(JSON.parse(body)) === body still holds.
import { randomBytes } from "node:crypto";
import type { BigNumbers } from "../model/enums";

/**
 * A number a double would change (9007199254740993, 12345678901234567890.12, 1e400), kept as
 * Postgres's digits. Filters compare it by exact decimal value; bodies carry it per BigNumbers.
 */
export class ExactNumber {
  constructor(readonly digits: string) {}
  /** A JSON string of the digits: what a body carries by default. */
  toJSON(): string {
    return this.digits;
  }
}

// How a body carries an ExactNumber (BigNumbers). "string": a JSON string of its digits, which a
// double-based parser keeps. "number": a JSON number with Postgres's digits, for receivers whose
// parser keeps them (JSON.stringify of such a parsed body is no longer the body).
export type { BigNumbers };

// jsonb cannot hold U+0000, and the nonce is per process: no stored string starts like this.
const NONCE = randomBytes(12).toString("hex");
const MARK = `\u0000${NONCE}:`;
const MARK_IN_JSON = JSON.stringify(MARK).slice(1, -1);
// Only a whole JSON string holding the mark and a JSON number literal is a marked number: a
// template can read the mark from its input, and must not splice other text into the body.
const MARKED_NUMBER = new RegExp(`"${MARK_IN_JSON.replace(/\\/g, "\\\\")}(-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"`, "g");

/**
 * Every JSON number of at most 15 characters of digits and point has at most 15 significant
 * digits and lies well inside the double range, so JSON.parse keeps its decimal value. Postgres
 * writes jsonb numbers without exponents; a longer run (a number or a string) takes the slow path.
 */
const MAYBE_INEXACT = /[0-9.]{16,}/;

export interface Decimal {
  /** 0: zero; otherwise -1 or 1. */
  sign: -1 | 0 | 1;
  /** Significant digits, no leading or trailing zeros. */
  digits: string;
  /** The value is 0.<digits> × 10^exponent. */
  exponent: number;
}

const DECIMAL = /^(-)?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** A decimal literal (JSON number, or a string such as "12.50") as sign, digits and exponent; null if it is not one. */
export function toDecimal(text: string): Decimal | null {
  const m = DECIMAL.exec(text);
  if (!m) return null;
  const int = m[2] ?? "";
  const frac = m[3] ?? "";
  if (int === "" && frac === "") return null;
  let all = int + frac;
  let exponent = int.length + Number(m[4] ?? 0);
  const lead = all.length - all.replace(/^0+/, "").length;
  all = all.slice(lead).replace(/0+$/, "");
  exponent -= lead;
  if (all === "" || !Number.isFinite(exponent)) return { sign: 0, digits: "", exponent: 0 };
  return { sign: m[1] ? -1 : 1, digits: all, exponent };
}

/** -1, 0 or 1: a against b, by exact decimal value. */
export function compareDecimals(a: Decimal, b: Decimal): -1 | 0 | 1 {
  if (a.sign !== b.sign) return a.sign < b.sign ? -1 : 1;
  if (a.sign === 0) return 0;
  let magnitude: -1 | 0 | 1;
  if (a.exponent !== b.exponent) magnitude = a.exponent < b.exponent ? -1 : 1;
  else {
    const width = Math.max(a.digits.length, b.digits.length);
    const x = a.digits.padEnd(width, "0");
    const y = b.digits.padEnd(width, "0");
    magnitude = x === y ? 0 : x < y ? -1 : 1;
  }
  return (magnitude * a.sign) as -1 | 0 | 1;
}

/** True when JSON.parse keeps this number token's decimal value (1e308 → 1e+308 does; 2^53 + 1 does not). */
export function doubleKeeps(token: string): boolean {
  const n = Number(token);
  if (!Number.isFinite(n)) return false;
  const exact = toDecimal(token);
  const shortest = toDecimal(String(n));
  return exact !== null && shortest !== null && compareDecimals(exact, shortest) === 0;
}

/**
 * True for a JSON number that JSON.parse cannot have rounded: a safe integer (|n| < 2^53) or a
 * fraction of at most 15 significant digits. Input read with JSON.parse (API bodies, CLI flags)
 * that fails this may not hold the digits the user wrote.
 */
export function fitsDouble(d: Decimal): boolean {
  if (d.sign === 0) return true;
  if (d.exponent < d.digits.length) return d.digits.length <= 15; // a fraction, so below 10^15
  if (d.exponent > 16) return false;
  return BigInt(d.digits.padEnd(d.exponent, "0")) < 2n ** 53n;
}

/** The decimal value of a number, or of an ExactNumber. */
export function decimalOf(v: number | ExactNumber): Decimal {
  const d = toDecimal(typeof v === "number" ? String(v) : v.digits);
  if (d === null) throw new Error(`not a decimal number: ${typeof v === "number" ? v : v.digits}`);
  return d;
}

/** Rewrites each number token JSON.parse would change into a marked string; null when there is none. */
function markInexact(text: string): string | null {
  let out = "";
  let from = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      // Skip the string: find its closing quote, one not escaped by an odd run of backslashes.
      let j = i + 1;
      for (;;) {
        j = text.indexOf('"', j);
        if (j < 0) return null; // malformed; JSON.parse will say so
        let k = j - 1;
        while (text.charCodeAt(k) === 92 /* \ */) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j++;
      }
      i = j + 1;
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if ((d >= 48 && d <= 57) || d === 46 || d === 101 || d === 69 || d === 43 || d === 45) j++;
        else break;
      }
      const token = text.slice(i, j);
      if (token.length > 15 && !doubleKeeps(token)) {
        out += `${text.slice(from, i)}"${MARK_IN_JSON}${token}"`;
        from = j;
      }
      i = j;
    } else i++;
  }
  return from === 0 ? null : out + text.slice(from);
}

function revive(_key: string, value: unknown): unknown {
  return typeof value === "string" && value.startsWith(MARK) ? new ExactNumber(value.slice(MARK.length)) : value;
}

export interface ParsedJson {
  value: unknown;
  /** True when `value` holds an ExactNumber somewhere. */
  exact: boolean;
}

/**
 * Parses JSON text (jsonb as Postgres writes it) without changing a number: those a double
 * would change come back as ExactNumber. Fast path: plain JSON.parse when no run of 16 digits
 * (or points) occurs anywhere in the text.
 */
export function parseExact(text: string): ParsedJson {
  const marked = MAYBE_INEXACT.test(text) ? markInexact(text) : null;
  return marked === null ? { value: JSON.parse(text), exact: false } : { value: JSON.parse(marked, revive), exact: true };
}

/**
 * JSON.stringify that writes each ExactNumber as `mode` says: a string of its digits, or its
 * digits as a JSON number. `exact` false (nothing to look for) is plain JSON.stringify.
 */
export function stringifyExact(value: unknown, mode: BigNumbers, exact: boolean): string {
  if (!exact || mode === "string") return JSON.stringify(value); // ExactNumber.toJSON gives its digits
  const out = JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const raw = this[key];
    return raw instanceof ExactNumber ? MARK + raw.digits : v;
  });
  return out.replace(MARKED_NUMBER, "$1");
}

/**
 * A value for code that cannot carry ExactNumber (a JSONata template): each becomes a string of
 * its digits ("string" mode), or a marked string that unmarkNumbers turns back into the JSON
 * number ("number" mode). Values without an ExactNumber are returned as they are.
 */
export function withoutExactNumbers(value: unknown, mode: BigNumbers): unknown {
  if (value instanceof ExactNumber) return mode === "string" ? value.digits : MARK + value.digits;
  if (Array.isArray(value)) return value.map((v) => withoutExactNumbers(v, mode));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = withoutExactNumbers(v, mode);
    return out;
  }
  return value;
}

const MARK_ANYWHERE = new RegExp(MARK_IN_JSON.replace(/\\/g, "\\\\"), "g");

/**
 * JSON text from withoutExactNumbers(…, "number") input: a marked string that is a whole JSON
 * value becomes the number; a mark inside a longer string (the template concatenated it) is
 * dropped, leaving the digits.
 */
export function unmarkNumbers(json: string): string {
  if (!json.includes(MARK_IN_JSON)) return json;
  return json.replace(MARKED_NUMBER, "$1").replace(MARK_ANYWHERE, "");
}
