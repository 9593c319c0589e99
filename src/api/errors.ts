// The one place HTTP failures are shaped: every error becomes {"error": {code, message, details}}
// with the status its code maps to. Anything unexpected is logged once and answered as a 500
// that reveals no internals.
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyReply, FastifyRequest, FastifySchemaCompiler } from "fastify";
import { ResponseSerializationError } from "fastify-type-provider-zod";
import type { z } from "zod";
import { fromPostgresError } from "../db/errors";
import { DomainError, coerceError, type ErrorCode, type ErrorDetail } from "../errors";
import { inputError } from "../model/validation";
import type { ErrorBody } from "./schemas";

export function errorBody(code: ErrorCode, message: string, details: ErrorDetail[] = []): ErrorBody {
  return { error: { code, message, details } };
}

const PART_NAMES: Record<string, string> = { body: "body", querystring: "query", params: "path", headers: "headers" };

/**
 * Validates a request part with its zod schema; a failure is an invalid_input (or
 * invalid_filter) DomainError whose details name each field.
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    // No body arrives as null; optional bodies (POST …/test) then take their defaults.
    const result = schema.safeParse(httpPart === "body" && data === null ? undefined : data);
    if (result.success) return { value: result.data };
    return { error: inputError(result.error, [], PART_NAMES[httpPart ?? "body"] ?? "body") };
  };

/** What a client is told about a database failure: never the driver's message (hosts, names). */
const DATABASE_FAILURE: Partial<Record<ErrorCode, string>> = {
  database_unavailable: "the database does not answer; try again shortly",
};
const INTERNAL = "internal error; the server log has the details";

export function toErrorResponse(e: unknown, bodyLimit: number): { status: number; body: ErrorBody; internal: boolean } {
  if (e instanceof DomainError) return { status: e.httpStatus, body: errorBody(e.code, e.message, e.details), internal: false };
  const fe = e as Partial<FastifyError>;
  switch (fe.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return { status: 413, body: errorBody("payload_too_large", `body: larger than the limit of ${bodyLimit} bytes`, [{ path: "body", message: `at most ${bodyLimit} bytes` }]), internal: false };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return { status: 415, body: errorBody("unsupported_media_type", "body: send JSON with Content-Type: application/json", [{ path: "body", message: "expected application/json" }]), internal: false };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return { status: 400, body: errorBody("invalid_input", `body: ${fe.message ?? "invalid body"}`, [{ path: "body", message: fe.message ?? "invalid body" }]), internal: false };
  }
  if (e instanceof ResponseSerializationError) {
    return { status: 500, body: errorBody("internal_error", INTERNAL), internal: true };
  }
  const db = fromPostgresError(e);
  if (db) return { status: db.httpStatus, body: errorBody(db.code, DATABASE_FAILURE[db.code] ?? INTERNAL), internal: true };
  // Other client errors Fastify raises itself (a bad header, an aborted body) keep their 4xx.
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    const message = fe.message ?? "bad request";
    return { status: fe.statusCode, body: errorBody(fe.statusCode === 404 ? "not_found" : "invalid_input", message), internal: false };
  }
  return { status: 500, body: errorBody("internal_error", INTERNAL), internal: true };
}

export function errorHandler(bodyLimit: number) {
  return (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, internal } = toErrorResponse(error, bodyLimit);
    if (internal) request.log.error({ err: coerceError(error) }, "request failed");
    if (status === 401) reply.header("www-authenticate", 'Bearer realm="pg-webhooks"');
    return reply.status(status).send(body);
  };
}

/** A path for a message: a 100 KB path is not echoed back whole. */
function shortPath(url: string): string {
  const path = url.split("?")[0] ?? url;
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  const path = shortPath(request.url);
  return reply
    .status(404)
    .send(errorBody("not_found", `no route ${request.method} ${path}; see /openapi.json or /docs for the routes`));
}

/**
 * Errors the router raises before any route runs: a path that does not percent-decode
 * (%ff%fe), a path segment longer than the router's limit. Same error shape as everything else.
 */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const path = shortPath(request.raw.url ?? "");
  if (error.code === "FST_ERR_MAX_PARAM_LENGTH") {
    const message = "a path segment is too long for any route";
    return reply.status(414).send(errorBody("uri_too_long", `path: ${message}`, [{ path: "path", message }]));
  }
  const message = error.code === "FST_ERR_BAD_URL" ? `${path} is not a valid percent-encoded path` : "the request cannot be routed";
  return reply.status(400).send(errorBody("invalid_input", `path: ${message}`, [{ path: "path", message }]));
}

/**
 * What Node's HTTP parser refuses before Fastify sees a request (a request line or headers over
 * Node's limit, 16 KB by default; a malformed request): answered on the socket in the same error
 * shape, then closed.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status = 400;
  let body: ErrorBody;
  if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    body = errorBody("headers_too_large", "the request line and headers are larger than the server accepts (16 KB)");
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    body = errorBody("request_timeout", "the request did not arrive in time");
  } else {
    body = errorBody("invalid_input", "malformed HTTP request");
  }
  const text = JSON.stringify(body);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy(err);
}
