// `npm start` is `pg-webhooks start`: the README's set-up is `npm ci && npm start`.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { waitUntil } from "./helpers/pipeline";

let t: TestDatabase;

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

it("runs the daemon, passing options after --, which stops gracefully on SIGTERM", async () => {
  const child = spawn("npm", ["start", "--silent", "--", "--no-api", "--no-migrate"], {
    cwd: join(__dirname, ".."),
    env: { ...process.env, DATABASE_URL: t.url, LOG_LEVEL: "warn", FORCE_COLOR: "0" },
    // Its own process group, so the signal reaches node under npm's shell.
    detached: true,
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (output += d));
  let daemonPid: number | undefined;
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm start printed no start-up line:\n${output}`)), 60_000);
      child.stderr.on("data", () => {
        if (output.includes("pg-webhooks running: dispatcher;")) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then(() => reject(new Error(`npm start exited early:\n${output}`)));
    });
    // The daemon registered itself: that process is node running our binary, not npm.
    const rows = await t.sql<{ pid: number }[]>`select pid from webhooks.dispatchers`;
    expect(rows).toHaveLength(1);
    daemonPid = rows[0]?.pid;
  } finally {
    if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGTERM");
  }
  await exited;
  // npm itself may die of the signal; the daemon under it stops gracefully: it removes its
  // heartbeat row, which only its own shutdown does.
  await waitUntil(async () => !alive(daemonPid), 30_000, "the daemon to exit");
  const [row] = await t.sql<{ n: number }[]>`select count(*)::int as n from webhooks.dispatchers`;
  expect(row?.n).toBe(0);
  expect(output).not.toMatch(/API on|error/i);
}, 90_000);
