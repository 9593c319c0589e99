// HTML form bodies (application/x-www-form-urlencoded) as the admin's routes read them: every
// field as a list of its values, in a Map so a field named __proto__ is only a field.
import type { FastifyRequest } from "fastify";
import type { ErrorDetail } from "../errors";
import { DomainError } from "../errors";

export type Form = Map<string, string[]>;

/** Form bodies larger than this are refused (413): no admin form comes near it. */
export const FORM_LIMIT = 256 * 1024;

export function parseForm(text: string): Form {
  const form: Form = new Map();
  for (const [name, value] of new URLSearchParams(text)) {
    const list = form.get(name);
    if (list) list.push(value);
    else form.set(name, [value]);
  }
  return form;
}

/** The request's form body; an empty form for any other body. */
export function formOf(request: FastifyRequest): Form {
  return request.body instanceof Map ? (request.body as Form) : new Map();
}

/** The field's first value, trimmed; undefined when absent or blank. */
export function field(form: Form, name: string): string | undefined {
  const v = form.get(name)?.[0]?.trim();
  return v === undefined || v === "" ? undefined : v;
}

/** Every non-blank value of a repeated field. */
export function fields(form: Form, name: string): string[] {
  return (form.get(name) ?? []).map((v) => v.trim()).filter((v) => v !== "");
}

/** Field errors by the form field they belong to, from a DomainError's details. */
export function errorsByField(e: DomainError): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of e.details) addError(out, d);
  if (out.size === 0) out.set("", e.message);
  return out;
}

function addError(out: Map<string, string>, d: ErrorDetail): void {
  const path = d.path.replace(/^body\.?/, "");
  if (!out.has(path)) out.set(path, d.message);
}
