// Keeps the daemon alive through a database restart. Two libraries misbehave then:
// graphile-worker 0.17 does not await the queries that complete or fail a job, so a lost
// connection surfaces as an unhandled rejection; postgres.js 3.4 can throw a TypeError from
// a timer on a socket that is already gone (porsager/postgres#1154). Both are logged and
// survived: the dispatcher re-queues what they left behind (see dispatcher.ts). Any other
// uncaught exception still ends the process.
import type { Logger } from "./logger";

/** True for the postgres.js timer error on a closed socket. */
export function isClosedSocketBug(e: unknown): boolean {
  return (
    e instanceof TypeError &&
    /Cannot read properties of null \(reading '(write|end|destroy)'\)/.test(e.message) &&
    /postgres[\\/](cjs|src)[\\/]/.test(e.stack ?? "")
  );
}

export function installProcessGuards(logger: Logger, exit: (code: number) => void = (c) => process.exit(c)): () => void {
  const onRejection = (reason: unknown) => {
    logger.error({ err: reason }, "unhandled rejection (usually a query cut off by a database restart); carrying on");
  };
  const onException = (e: Error) => {
    if (isClosedSocketBug(e)) {
      logger.warn({ err: e }, "database socket closed under a pending write; carrying on");
      return;
    }
    logger.fatal({ err: e }, "uncaught exception");
    logger.flush?.();
    exit(1);
  };
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return () => {
    process.off("unhandledRejection", onRejection);
    process.off("uncaughtException", onException);
  };
}
