// `pg-webhooks start`: migrates, then runs the dispatcher and the HTTP API until SIGTERM or
// SIGINT, when it stops them gracefully (in-flight requests get the grace period) and exits 0,
// within the grace period plus a few seconds whatever the database does.
import type { Command } from "commander";
import { DomainError } from "../errors";
import type { Cli } from "./context";
import { common, type CommonOptions } from "./options";

interface StartOptions extends CommonOptions {
  api: boolean;
  admin: boolean;
  dispatcher: boolean;
  migrate: boolean;
}

export function registerStart(program: Command, cli: Cli): void {
  common(
    program
      .command("start")
      .description("run the dispatcher and the HTTP API (each can be turned off) until SIGTERM/SIGINT")
      .option("--no-api", "do not serve the HTTP API (dispatcher only)")
      .option("--no-admin", "do not serve the admin UI at /admin (the API only; or WEBHOOKS_ADMIN=off)")
      .option("--no-dispatcher", "do not deliver webhooks (API only)")
      .option("--no-migrate", "do not apply pending migrations at start-up"),
    "pg-webhooks start",
    "DATABASE_URL=postgres://app@db.internal/app pg-webhooks start --no-api   # a dispatcher-only replica",
  ).action(async (opts: StartOptions) => {
    if (!opts.api && !opts.dispatcher) {
      throw new DomainError("invalid_input", "--no-api and --no-dispatcher together leave nothing to run");
    }
    // The daemon's dependencies (fastify, graphile-worker, undici, pino) load only here,
    // so one-shot commands start quickly.
    const { createLogger } = await import("../logger.js");
    const { runServer } = await import("../server.js");
    const { resolveDatabase } = await import("./database.js");
    const out = cli.output(opts);
    const config = await cli.config();
    const logger = createLogger(config.LOG_LEVEL, opts.json ? false : undefined);
    const { installProcessGuards, limitHeapGrowth } = await import("../process-guards.js");
    installProcessGuards(logger);
    limitHeapGrowth();
    const db = await resolveDatabase(opts.databaseUrl, config, (l) => logger.info(l));
    // From here the server owns the database: its close() stops an embedded Postgres last.
    const server = await runServer({ config, database: db, api: opts.api, admin: opts.admin, dispatcher: opts.dispatcher, migrate: opts.migrate, logger });

    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal, graceMs: config.WEBHOOKS_SHUTDOWN_GRACE_MS }, "shutting down");
      // server.close() bounds every step by the grace period; this is the backstop should
      // anything still hang. Nothing committed is lost: unrecorded results are sent again.
      setTimeout(() => {
        logger.error("shutdown did not finish within the grace period plus 4 s; exiting anyway");
        logger.flush?.();
        process.exit(1);
      }, config.WEBHOOKS_SHUTDOWN_GRACE_MS + 4000).unref();
      server.close().then(
        () => {
          logger.flush?.();
          process.exit(0);
        },
        (e: unknown) => {
          logger.error({ err: e }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    if (db.source === "embedded") {
      const { takeShutdownSignals } = await import("../db/embedded.js");
      takeShutdownSignals();
    }
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    const parts = [opts.dispatcher ? "dispatcher" : null, opts.api ? `API on ${server.apiUrl ?? "?"}` : null];
    const admin = opts.api && opts.admin && config.WEBHOOKS_ADMIN ? `; admin UI at ${server.apiUrl ?? "?"}/admin` : "";
    out.notice(
      `pg-webhooks running: ${parts.filter(Boolean).join(" + ")}${admin}` +
        `${db.source === "embedded" ? " (embedded Postgres)" : ""}; Ctrl-C stops it`,
    );
    await server.done;
  });
}
