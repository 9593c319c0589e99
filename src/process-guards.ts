// Keeps the daemon alive through a database restart. Two libraries misbehave then:
// graphile-worker 0.17 does not await the queries that complete or fail a job, so a lost
// connection surfaces as an unhandled rejection; postgres.js 3.4 can throw a TypeError from
// a timer on a socket that is already gone (porsager/postgres#1154). Both are logged and
// survived: the dispatcher re-queues what they left behind (see dispatcher.ts). Any other
// uncaught exception still ends the process.
import { setFlagsFromString } from "node:v8";
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

/**
 * A long-running daemon keeps little alive (about 30 MB after a full GC while it drains a
 * backlog) but allocates fast, and V8 then lets the heap grow to about four times the live
 * set before collecting. Capping the growth at 1.5× keeps the resident size near 160 MB
 * instead of 250 MB at the same delivery rate. An explicit heap flag from the operator wins.
 */
export function limitHeapGrowth(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].join(" ");
  if (/heap-growing-percent|heap_growing_percent/.test(given)) return;
  setFlagsFromString("--heap-growing-percent=50");
}
