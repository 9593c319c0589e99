// `pg-webhooks start` wired on the core: migrations first (when asked), then the dispatcher
// and the API, each deferred onto the core so its one close() stops them (together: both
// get the grace period), then the sender, the pool and the embedded Postgres, in that order.
import type { Config } from "./config";
import { createCore, type ResolvedUrl } from "./core";
import type { Logger } from "./logger";
import { connectionBudget } from "./db/budget";
import { migrate } from "./db/migrate";
import { CLOSE_AFTER_DEADLINE_MS, startDispatcher } from "./dispatch/dispatcher";
import { buildApp } from "./api/app";

export interface RunningServer {
  /** The API's address when it runs, e.g. http://127.0.0.1:8080 */
  apiUrl: string | null;
  close(): Promise<void>;
  /** Resolves once close() has finished. */
  done: Promise<void>;
}

export async function runServer(opts: {
  config: Config;
  /** From here on the server owns it: an embedded Postgres it was given stops with it. */
  database: string | ResolvedUrl;
  api: boolean;
  /** Serve the admin UI with the API (when config.WEBHOOKS_ADMIN allows it too). */
  admin?: boolean;
  dispatcher: boolean;
  /** Apply pending migrations before anything else starts. */
  migrate: boolean;
  logger: Logger;
}): Promise<RunningServer> {
  const { config, logger } = opts;
  const budget = connectionBudget(config.WEBHOOKS_DB_POOL_SIZE, config.WEBHOOKS_CONCURRENCY, opts.dispatcher);
  // Metrics are served by the API, so only a process running it keeps them; with no
  // dispatcher alongside, the counters stay at zero and the database gauges still work.
  const core = createCore(config, { database: opts.database, pool: budget.pool, logger, metrics: opts.api });
  const databaseUrl = typeof opts.database === "string" ? opts.database : opts.database.url;
  let apiUrl: string | null = null;
  try {
    if (opts.migrate) {
      const r = await migrate(core.conn.sql, databaseUrl);
      if (r.applied.length > 0) logger.info({ applied: r.applied }, "applied migrations");
    }
    const { ctx, metrics } = core.sending();
    if (opts.dispatcher) {
      const dispatcher = await startDispatcher({ config, databaseUrl, ctx, workerPoolSize: budget.worker });
      core.defer("the dispatcher", (deadline) => dispatcher.close(deadline), { overrunMs: CLOSE_AFTER_DEADLINE_MS });
    }
    if (opts.api) {
      const admin = (opts.admin ?? true) && config.WEBHOOKS_ADMIN;
      const app = buildApp({ conn: core.conn, ctx, config, logger, metrics, admin });
      core.defer("the API", () => app.close(), { withinGrace: true, together: opts.dispatcher });
      apiUrl = await app.listen({ port: config.PORT, host: config.HOST });
      logger.info({ url: apiUrl, admin: admin ? `${apiUrl}/admin` : "off" }, "API listening");
    }
  } catch (e) {
    await core.close().catch((stopErr: unknown) => logger.warn({ err: stopErr }, "the embedded Postgres did not stop cleanly"));
    throw e;
  }

  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => (resolveDone = r));
  return {
    apiUrl,
    done,
    close: () => core.close().finally(resolveDone),
  };
}
