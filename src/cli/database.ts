// Which database a command talks to: --database-url, else DATABASE_URL, else the embedded
// Postgres under ./.pg-webhooks (started when none runs, and stopped again after a
// one-shot command when this process started it).
import type { Config } from "../config";
import { COMMAND_POOL_SIZE } from "../db/budget";
import { createCore, type Core } from "../core";
import { DEFAULT_EMBEDDED_DIR } from "../db/embedded";
import { DomainError } from "../errors";

export interface ResolvedDatabase {
  url: string;
  source: "flag" | "env" | "embedded";
  /** True when this process started an embedded server and must stop it. */
  owned: boolean;
  stop(): Promise<void>;
}

export async function resolveDatabase(
  flag: string | undefined,
  config: Config,
  notice: (line: string) => void,
): Promise<ResolvedDatabase> {
  if (flag !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(flag)) {
      throw new DomainError("invalid_input", `--database-url: expected a postgres:// or postgresql:// URL, got ${JSON.stringify(flag)}`);
    }
    return { url: flag, source: "flag", owned: false, stop: async () => {} };
  }
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, source: "env", owned: false, stop: async () => {} };
  // Loaded only when needed: most commands run against DATABASE_URL.
  const { startEmbedded } = await import("../db/embedded.js");
  const embedded = await startEmbedded(DEFAULT_EMBEDDED_DIR, notice);
  if (!embedded.owned) notice(`using the embedded Postgres already running under ./${DEFAULT_EMBEDDED_DIR}`);
  return {
    url: embedded.url,
    source: "embedded",
    owned: embedded.owned,
    async stop() {
      if (!embedded.owned) return;
      notice("stopping the embedded Postgres this command started");
      await embedded.stop();
    },
  };
}

/**
 * Runs a one-shot command on a core over the resolved database, closed (pool, then any
 * embedded Postgres this process started) when the command ends. An embedded database is
 * migrated first, so the zero-setup path needs no separate `migrate`.
 */
export async function withCore<T>(
  flag: string | undefined,
  config: Config,
  notice: (line: string) => void,
  fn: (core: Core, db: ResolvedDatabase) => Promise<T>,
  opts: { autoMigrate?: boolean } = {},
): Promise<T> {
  const db = await resolveDatabase(flag, config, notice);
  const core = createCore(config, { database: db, pool: COMMAND_POOL_SIZE });
  try {
    if (db.source === "embedded" && opts.autoMigrate !== false) {
      const { migrate } = await import("../db/migrate.js"); // graphile-worker: loaded on use
      await migrate(core.conn.sql, db.url);
    }
    return await fn(core, db);
  } finally {
    await core.close();
  }
}
