// Postgres and driver errors as the API and the CLI answer them: one mapping (db/errors.ts),
// a status and exit code per kind, and never a driver message sent to an HTTP client.
import { BODY_LIMIT } from "../src/api/app";
import { toErrorResponse } from "../src/api/errors";
import { reportError } from "../src/cli/main";
import { fromPostgresError } from "../src/db/errors";

const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

function cli(e: unknown, poolSize?: number): { code: number; text: string } {
  let text = "";
  const code = reportError(e, false, (s) => (text += s), poolSize);
  return { code, text };
}

describe("a Postgres or driver error", () => {
  it.each([
    ["ECONNREFUSED", 503, "connect ECONNREFUSED 10.0.0.5:5432", "could not connect to the database: connect ECONNREFUSED 10.0.0.5:5432\n  check --database-url or DATABASE_URL"],
    ["28P01", 500, 'password authentication failed for user "app"', "could not connect to the database: password authentication failed"],
    ["3D000", 500, 'database "nope" does not exist', "could not connect to the database"],
    ["57P01", 503, "terminating connection due to administrator command", "error: terminating connection due to administrator command\n"],
    ["CONNECTION_CLOSED", 503, "write CONNECTION_CLOSED 10.0.0.5:5432", "error: write CONNECTION_CLOSED"],
    ["42P01", 500, 'relation "webhooks.subscriptions" does not exist', "run `pg-webhooks migrate` first"],
    ["42883", 500, "function webhooks.track_table(regclass) does not exist", "run `pg-webhooks migrate` first"],
    ["53300", 503, "sorry, too many clients already", "the database refused a connection: sorry, too many clients already\n  the database server has no connection slots left"],
  ])("%s: the API answers %i without the driver's message; the CLI says what to do and exits 1", (code, status, message, said) => {
    const e = pgError(code, message);
    const r = toErrorResponse(e, BODY_LIMIT);
    expect(r.status).toBe(status);
    expect(r.internal).toBe(true);
    expect(JSON.stringify(r.body)).not.toContain(message);
    const c = cli(e, 20);
    expect(c.code).toBe(1);
    expect(c.text).toContain(said);
  });

  it("of an unknown code, or none, is left as it is", () => {
    expect(fromPostgresError(pgError("23505", "duplicate key"))).toBeNull();
    expect(fromPostgresError(new Error("plain"))).toBeNull();
    expect(fromPostgresError(pgError("42P01", 'relation "public.items" does not exist'))).toBeNull();
    expect(toErrorResponse(pgError("23505", "duplicate key"), BODY_LIMIT).status).toBe(500);
  });

  it("from a SQL function given user input is invalid_input naming the field (exit 2)", () => {
    const unknown = fromPostgresError(pgError("42P01", 'relation "nope" does not exist'), { userInput: { table: "nope" } });
    expect(unknown?.code).toBe("invalid_input");
    expect(unknown?.message).toBe('table: relation "nope" does not exist');
    const arg = fromPostgresError(pgError("22023", "operations: expected insert, update or delete"), { userInput: {} });
    expect(arg?.details).toEqual([{ path: "operations", message: "expected insert, update or delete" }]);
    const json = fromPostgresError(pgError("22P02", "invalid input syntax for type json"), { userInput: {} });
    expect(json?.details[0]?.path).toBe("data");
    expect(cli(unknown).code).toBe(2);
  });
});
