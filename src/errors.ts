// Domain errors with stable codes, mapped in one place to HTTP statuses and CLI exit codes.

export type ErrorCode =
  | "invalid_input"
  | "invalid_filter"
  | "private_target"
  | "not_found"
  | "webhook_not_found"
  | "delivery_not_found"
  | "key_not_found"
  | "inbound_source_not_found"
  | "inbound_event_not_found"
  | "verification_failed"
  | "rate_limited"
  | "unauthorized"
  | "payload_too_large"
  | "unsupported_media_type"
  | "uri_too_long"
  | "headers_too_large"
  | "request_timeout"
  | "conflict"
  | "database_unavailable"
  | "internal_error";

const httpStatus: Record<ErrorCode, number> = {
  invalid_input: 400,
  invalid_filter: 400,
  private_target: 400,
  not_found: 404,
  webhook_not_found: 404,
  delivery_not_found: 404,
  key_not_found: 404,
  inbound_source_not_found: 404,
  inbound_event_not_found: 404,
  verification_failed: 401,
  rate_limited: 429,
  unauthorized: 401,
  payload_too_large: 413,
  unsupported_media_type: 415,
  uri_too_long: 414,
  headers_too_large: 431,
  request_timeout: 408,
  conflict: 409,
  database_unavailable: 503,
  internal_error: 500,
};

/** Every code, for the API's error schema. */
export const ERROR_CODES = Object.keys(httpStatus) as ErrorCode[];

export interface ErrorDetail {
  path: string;
  message: string;
}

export interface DomainErrorOptions {
  /** What to do about it, printed by the CLI on a line of its own (the API does not send it). */
  hint?: string;
  /** The error this one stands for (a Postgres or driver error), kept for the log. */
  cause?: unknown;
}

export class DomainError extends Error {
  override name = "DomainError";
  readonly hint: string | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetail[] = [],
    options: DomainErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options.hint;
  }
  get httpStatus(): number {
    return httpStatus[this.code];
  }
  /** CLI exit code: 2 for bad input (a usage problem), 1 for everything else. */
  get exitCode(): number {
    return this.httpStatus === 400 ? 2 : 1;
  }
}

export const notFound = (code: ErrorCode, what: string, id: string) =>
  new DomainError(code, `${what} ${id} not found`);

/** Anything thrown that is not an Error becomes one, once. */
export function coerceError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
