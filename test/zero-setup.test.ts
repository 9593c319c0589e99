// A new user with no DATABASE_URL: the binary runs on an embedded Postgres under ./.pg-webhooks.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BIN = join(__dirname, "..", "bin", "pg-webhooks.js");

function run(cwd: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    encoding: "utf8",
    timeout: 120000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("zero-setup", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "pgw-zero-"));
    chmodSync(dir, 0o777); // the embedded server may run as another user when we are root
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("migrates and tracks a table on an embedded Postgres it starts and stops itself", () => {
    const migrate = run(dir, ["migrate"]);
    expect(migrate.stderr).toMatch(/embedded Postgres/);
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toMatch(/0001_tables\.sql/);
    expect(existsSync(join(dir, ".pg-webhooks", "data", "PG_VERSION"))).toBe(true);
    const again = run(dir, ["migrate"]);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toMatch(/applied 0001_tables\.sql/);
    const emit = run(dir, ["emit", "invoice.paid", '{"id": 1}', "--json"]);
    expect(emit.code).toBe(0);
  }, 180000);
});

describe("configuration", () => {
  it("refuses a bad environment variable with a message naming it, and changes nothing", () => {
    const r = run(tmpdir(), ["migrate"], { PORT: "eighty", DATABASE_URL: "mysql://nope" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/PORT/);
    expect(r.stderr).toMatch(/DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL/);
  });
});
