// Composition root: owns every long-lived thing `pg-webhooks start` runs (connection,
// HTTP sender, dispatcher, API server) and the one close() that stops them in order.
import type { Config } from "./config";
import type { Logger } from "./logger";
import { connect } from "./db/connection";
import { connectionBudget } from "./db/budget";
import { createSender } from "./delivery/client";
import { CLOSE_AFTER_DEADLINE_MS, startDispatcher, type Dispatcher } from "./dispatch/dispatcher";
import type { DeliverContext } from "./dispatch/context";
import { breakerFromConfig } from "./model/circuit";
import { buildApp } from "./api/app";
import { createMetrics } from "./metrics";
import { settledBy } from "./util/deadline";

export interface RunningServer {
  /** The API's address when it runs, e.g. http://127.0.0.1:8080 */
  apiUrl: string | null;
  close(): Promise<void>;
  /** Resolves once close() has finished. */
  done: Promise<void>;
}

export async function runServer(opts: {
  config: Config;
  databaseUrl: string;
  api: boolean;
  dispatcher: boolean;
  logger: Logger;
}): Promise<RunningServer> {
  const { config, databaseUrl, logger } = opts;
  const budget = connectionBudget(config.WEBHOOKS_DB_POOL_SIZE, config.WEBHOOKS_CONCURRENCY, opts.dispatcher);
  const conn = connect(databaseUrl, { max: budget.pool });
  const sender = createSender({ allowPrivateTargets: config.WEBHOOKS_ALLOW_PRIVATE_TARGETS });
  // Metrics are served by the API, so only a process running it keeps them; with no
  // dispatcher alongside, the counters stay at zero and the database gauges still work.
  const metrics = opts.api ? createMetrics(conn, { logger }) : undefined;
  const ctx: DeliverContext = { conn, sender, logger, observer: metrics?.observer, breaker: breakerFromConfig(config) };

  let dispatcher: Dispatcher | null = null;
  let app: ReturnType<typeof buildApp> | null = null;
  let apiUrl: string | null = null;
  try {
    if (opts.dispatcher) dispatcher = await startDispatcher({ config, databaseUrl, ctx, workerPoolSize: budget.worker });
    if (opts.api) {
      app = buildApp({ conn, ctx, config, logger, metrics });
      apiUrl = await app.listen({ port: config.PORT, host: config.HOST });
      logger.info({ url: apiUrl }, "API listening");
    }
  } catch (e) {
    await dispatcher?.close();
    await app?.close();
    await sender.close();
    await conn.close();
    throw e;
  }

  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => (resolveDone = r));
  let closing: Promise<void> | undefined;
  return {
    apiUrl,
    done,
    close() {
      closing ??= (async () => {
        // One deadline for the whole stop: in-flight work gets the grace period, the last
        // writes a little more, and nothing waits on a database that is away.
        const deadline = Date.now() + config.WEBHOOKS_SHUTDOWN_GRACE_MS;
        const last = deadline + CLOSE_AFTER_DEADLINE_MS;
        const step = async (what: string, work: Promise<void> | undefined, by: number) => {
          const done = await settledBy(work?.catch((e: unknown) => logger.warn({ err: e }, `${what} did not stop cleanly`)), by);
          if (!done) logger.warn(`${what} had not stopped by the end of the grace period; exiting anyway`);
        };
        await Promise.all([step("the API", app?.close(), deadline), step("the dispatcher", dispatcher?.close(deadline), last)]);
        await step("the HTTP sender", sender.close(), Math.max(last, Date.now() + 500));
        await step("the database pool", conn.close(), Math.max(last, Date.now() + 500));
        resolveDone();
      })();
      return closing;
    },
  };
}
