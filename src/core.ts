// The composition root: the one place a process builds its long-lived parts (the database
// connection, the HTTP sender, the logger, the dispatch context) and the one close() that
// releases them: a stack of releasers, stopped in reverse order of acquisition (as
// graphile-worker's runner does), each bounded by a deadline so a stop ends in time whatever
// the database or a receiver does. Used by `start` (src/server.ts), every CLI command, the
// test helpers and the OpenAPI script.
import type { Config } from "./config";
import { connect, type Connection } from "./db/connection";
import type { Sender } from "./delivery/client";
import type { DeliverContext } from "./dispatch/context";
import { breakerFromConfig } from "./model/circuit";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";
import { settledBy } from "./util/deadline";

/** A database the CLI resolved: stop() (an embedded server this process started) runs last. */
export interface ResolvedUrl {
  url: string;
  stop?(): Promise<void>;
}

/** An open connection the caller keeps (a test's database): the core uses it and never closes it. */
export interface BorrowedConnection {
  url: string;
  connection: Connection;
}

export interface CoreOptions {
  /** null: no database at all (to describe the API); every query on `conn` throws. */
  database: string | ResolvedUrl | BorrowedConnection | null;
  /** Our pool's size (default: postgres.js's). */
  pool?: number;
  /** The process's logger; by default one is made from LOG_LEVEL when first needed. */
  logger?: Logger;
  /** Count what the dispatcher does for GET /metrics (only a process serving the API keeps them). */
  metrics?: boolean;
}

/** What sending needs; built on first use, because it loads undici and pino. */
export interface Sending {
  sender: Sender;
  logger: Logger;
  metrics: Metrics | undefined;
  ctx: DeliverContext;
}

export interface ReleaseOptions {
  /** Bounded by the grace deadline itself (the API: in-flight requests get the grace period). */
  withinGrace?: boolean;
  /** May run this long past the grace deadline (the dispatcher's last writes); later steps get as long. */
  overrunMs?: number;
  /** Gets at least this long however late it starts (default 500 ms). */
  atLeastMs?: number;
  /** Stops at the same time as the releaser deferred just before it, not after it. */
  together?: boolean;
  /** Its failure is not just logged: close() rejects with it once everything else is released. */
  throws?: boolean;
}

interface Releaser extends ReleaseOptions {
  what: string;
  close(deadline: number): Promise<unknown> | undefined;
}

export interface Core {
  readonly config: Config;
  /** The URL `conn` uses (graphile-worker opens its own pool from it); null without a database. */
  readonly databaseUrl: string | null;
  readonly conn: Connection;
  /** The sender, logger, metrics and dispatch context, made on the first call (the same ones after). */
  sending(): Sending;
  /** Pushes a releaser: close(deadline) runs when the core closes, before everything deferred earlier. */
  defer(what: string, close: (deadline: number) => Promise<unknown> | undefined, opts?: ReleaseOptions): void;
  /**
   * Releases everything, newest first. One deadline for the whole stop: the grace period
   * (WEBHOOKS_SHUTDOWN_GRACE_MS) from now, plus the longest overrun for the last writes.
   * Idempotent. Failures and overruns are logged and the stop goes on; it rejects only when a
   * releaser deferred with `throws` failed (the embedded Postgres did not stop).
   */
  close(): Promise<void>;
}

/** A connection that is never opened: a core without a database says so on first use. */
function noConnection(): Connection {
  const refuse = (): never => {
    throw new Error("this core was built without a database (to describe the API); nothing can query it");
  };
  const nothing = new Proxy(refuse, { get: refuse, apply: refuse }) as unknown;
  return { sql: nothing as Connection["sql"], db: nothing as Connection["db"], close: async () => {} };
}

export function createCore(config: Config, opts: CoreOptions): Core {
  const stack: Releaser[][] = [];
  let logger: Logger | undefined = opts.logger;
  const defer: Core["defer"] = (what, close, o = {}) => {
    const layer = o.together ? stack[stack.length - 1] : undefined;
    if (layer) layer.push({ what, close, ...o });
    else stack.push([{ what, close, ...o }]);
  };

  const db = opts.database;
  let databaseUrl: string | null = null;
  let conn: Connection;
  if (db === null) conn = noConnection();
  else if (typeof db !== "string" && "connection" in db) {
    databaseUrl = db.url;
    conn = db.connection;
  } else {
    databaseUrl = typeof db === "string" ? db : db.url;
    // Deferred first, so an embedded Postgres this process started stops last.
    if (typeof db !== "string" && db.stop) {
      const stop = db.stop.bind(db);
      defer("the database server", () => stop(), { atLeastMs: 5000, throws: true });
    }
    const own = connect(databaseUrl, opts.pool === undefined ? {} : { max: opts.pool });
    conn = own;
    defer("the database pool", () => own.close());
  }

  // Required on first use: one-shot commands that never send skip undici, pino and prom-client.
  // (require, not import(): the tests run this file under jest, which has no native import().)
  const makeSending = (): Sending => {
    const { createSender } = require("./delivery/client") as typeof import("./delivery/client");
    if (logger === undefined) {
      const { createLogger } = require("./logger") as typeof import("./logger");
      logger = createLogger(config.LOG_LEVEL, false);
    }
    const sender = createSender({ allowPrivateTargets: config.WEBHOOKS_ALLOW_PRIVATE_TARGETS });
    defer("the HTTP sender", () => sender.close());
    let metrics: Metrics | undefined;
    if (opts.metrics) {
      const { createMetrics } = require("./metrics") as typeof import("./metrics");
      metrics = createMetrics(conn, { logger });
    }
    const ctx: DeliverContext = { conn, sender, logger, observer: metrics?.observer, breaker: breakerFromConfig(config) };
    return { sender, logger, metrics, ctx };
  };

  let sending: Sending | undefined;
  let closing: Promise<void> | undefined;
  const core: Core = {
    config,
    databaseUrl,
    conn,
    defer,
    sending() {
      return (sending ??= makeSending());
    },
    close() {
      closing ??= (async () => {
        const deadline = Date.now() + config.WEBHOOKS_SHUTDOWN_GRACE_MS;
        const last = deadline + Math.max(0, ...stack.flat().map((r) => r.overrunMs ?? 0));
        const failures: unknown[] = [];
        const step = async (r: Releaser) => {
          const by = r.withinGrace ? deadline : Math.max(last, Date.now() + (r.atLeastMs ?? 500));
          let work: Promise<unknown> | undefined;
          try {
            work = r.close(deadline);
          } catch (e) {
            work = Promise.reject(e);
          }
          const failed = (e: unknown) => {
            if (r.throws) failures.push(e);
            else logger?.warn({ err: e }, `${r.what} did not stop cleanly`);
          };
          const done = await settledBy(work?.catch(failed), by);
          if (!done) logger?.warn(`${r.what} had not stopped by the end of the grace period; exiting anyway`);
        };
        for (let layer = stack.pop(); layer; layer = stack.pop()) await Promise.all(layer.map(step));
        if (failures.length > 0) throw failures[0];
      })();
      return closing;
    },
  };
  return core;
}
