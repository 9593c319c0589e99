// Every command ends quietly when the reader of its stdout goes away (`pg-webhooks status |
// head -1`): no EPIPE stack, and the exit code the command would have had (0 here).
import { spawn } from "node:child_process";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { BIN } from "./helpers/cli";
import { insertWebhook } from "./helpers/pipeline";

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
  // Enough rows that a listing is printed in more than one write.
  for (let i = 0; i < 30; i++) await insertWebhook(t.sql, { url: `http://127.0.0.1:9/hook-${i}`, events: [`e${i}.*`] });
});
afterAll(async () => {
  await t?.close();
});

interface Closed {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the real binary with its stdout's read end closed at once: every write meets EPIPE. */
function runWithClosedStdout(args: string[]): Promise<Closed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, DATABASE_URL: t.url, LOG_LEVEL: "warn", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`pg-webhooks ${args.join(" ")} did not end with its stdout closed\nstderr: ${stderr}`));
    }, 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const COMMANDS = [
  ["status"],
  ["status", "--json"],
  ["webhooks", "list"],
  ["webhooks", "list", "--json"],
  ["deliveries", "list"],
  ["tracked"],
  ["keys", "list"],
  ["--help"],
  ["webhooks", "create", "--help"],
  ["--version"],
];

it.each(COMMANDS.map((c) => [c.join(" "), c] as const))("`pg-webhooks %s` ends quietly with exit 0 when its stdout is closed", async (_name, args) => {
  const r = await runWithClosedStdout([...args]);
  expect(r.stderr).not.toMatch(/EPIPE|Error:|at .*\.js:\d+/);
  expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
});

it("still fails a command that failed, with its message, when stdout is closed", async () => {
  const r = await runWithClosedStdout(["webhooks", "show", "3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f"]);
  expect(r.stderr).toMatch(/not found/i);
  expect(r.stderr).not.toMatch(/EPIPE/);
  expect(r.code).toBe(1);
});
