// The one place Postgres and driver errors become domain errors: which SQLSTATEs and
// connection codes mean "the database is away", "the schema is not migrated", "the server has
// no connection slots", or (from our SQL functions) "the caller's input is wrong". The API and
// the CLI render the result; no other file reads a Postgres error code.
// No imports that load a driver: the CLI's error path loads this without them.
import { DomainError } from "../errors";
import { tooManyConnectionsHint } from "./budget";

/** The server cannot be reached at all. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "CONNECT_TIMEOUT"]);
/** The server answered but refused us: a wrong password (28P01), no such database (3D000). */
const LOGIN_REFUSED = new Set(["28P01", "3D000"]);
/** A connection went away mid-way: the server restarted (57P01, 57P03) or the network dropped. */
const LOST = new Set(["ETIMEDOUT", "ECONNRESET", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "57P01", "57P03"]);
/** Undefined table (42P01), schema (3F000) or function (42883): of ours, a missing migration. */
const UNDEFINED_OBJECT = new Set(["42P01", "3F000", "42883"]);
/** An unknown table a caller named: undefined table (42P01), bad name (42602), unknown schema (3F000). */
const UNKNOWN_TABLE = new Set(["42P01", "42602", "3F000"]);
/** What our SQL functions raise on a bad argument, messages shaped "field: what is wrong". */
const INVALID_ARGUMENT = new Set(["22023", "42703"]);

const CONNECT_HINT = "check --database-url or DATABASE_URL";
const MIGRATE_HINT = "the webhooks schema is missing or out of date: run `pg-webhooks migrate` first";

export interface PostgresErrorContext {
  /**
   * The query handed what a user typed to one of our SQL functions (track_table, emit): an
   * unknown table, a bad argument or bad JSON is then invalid_input naming the field. `table`:
   * the table argument, if any.
   */
  userInput?: { table?: string };
  /** WEBHOOKS_DB_POOL_SIZE, for the hint when the server has no connection slots left. */
  poolSize?: number;
}

/**
 * The domain error a Postgres or driver error stands for, or null when it is none we know.
 * database_unavailable (HTTP 503): the server is unreachable, the connection was lost, or it has
 * no connection slot free. internal_error: the server refused our login or the schema is not
 * migrated. The hint says what to do.
 */
export function fromPostgresError(e: unknown, context: PostgresErrorContext = {}): DomainError | null {
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === "string" ? err.code : "";
  if (code === "") return null;
  const message = typeof err?.message === "string" ? err.message : String(e);
  const cause = e;

  if (context.userInput) {
    if (UNKNOWN_TABLE.has(code)) return new DomainError("invalid_input", `table: ${message}`, [{ path: "table", message }], { cause });
    if (INVALID_ARGUMENT.has(code)) {
      const m = /^([a-z_]+): (.*)$/s.exec(message);
      const path = m?.[1] ?? (context.userInput.table ? "table" : "input");
      return new DomainError("invalid_input", message, [{ path, message: m?.[2] ?? message }], { cause });
    }
    if (code === "22P02" && /json/i.test(message)) {
      return new DomainError("invalid_input", `data: ${message}`, [{ path: "data", message }], { cause });
    }
  }

  const tooMany = tooManyConnectionsHint(e, context.poolSize);
  // No slot free now is a passing state of the server, not a fault of ours: 503, try again.
  if (tooMany) return new DomainError("database_unavailable", `the database refused a connection: ${message}`, [], { hint: tooMany, cause });
  if (UNREACHABLE.has(code)) {
    return new DomainError("database_unavailable", `could not connect to the database: ${message}`, [], { hint: CONNECT_HINT, cause });
  }
  if (LOGIN_REFUSED.has(code)) {
    return new DomainError("internal_error", `could not connect to the database: ${message}`, [], { hint: CONNECT_HINT, cause });
  }
  if (LOST.has(code)) return new DomainError("database_unavailable", message, [], { cause });
  if (UNDEFINED_OBJECT.has(code) && /webhooks/.test(message)) {
    return new DomainError("internal_error", message, [], { hint: MIGRATE_HINT, cause });
  }
  return null;
}
