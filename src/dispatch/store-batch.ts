// Writes a batch of results (attempts, parked and released deliveries) so that one bad row
// never blocks the others. A write that fails for a reason that will not go away (a value
// Postgres refuses, a bug) is split in halves until the row that fails is alone; that row is
// then stored without its request and response contents, with a note saying why. Only
// failures that may pass (the connection lost, the server restarting, a deadlock) are tried
// again as they are.
import type { Logger } from "../logger";
import type { QueuedDelivery } from "./jobs";
import type { RecordSummary } from "./record";
import type { Recorded } from "./send";

export interface Batch {
  results: Recorded[];
  /** Deliveries to park behind an open circuit. */
  park: string[];
  /** Deliveries to hand back to the job queue. */
  release: QueuedDelivery[];
}

export interface BatchWriter {
  /** Writes the whole batch in one transaction. */
  write(b: Batch): Promise<RecordSummary>;
  /** Called once for each part of the batch that was written. */
  written(b: Batch, s: RecordSummary): void;
  /**
   * A failure that may pass: resolves true to write the same batch again (after waiting),
   * false to give it up; or throws.
   */
  transient(e: unknown, b: Batch, tries: number): Promise<boolean>;
  logger: Logger;
}

// SQLSTATE classes that say nothing about the data: connection exceptions, insufficient
// resources, operator intervention (shutdown, crash recovery), system errors, transaction
// rollback (deadlock, serialization) and lock not available. Within them, a statement timeout
// (57014) and a configured limit (53400) would fail the same batch again: a smaller batch may pass.
const TRANSIENT_SQLSTATE_CLASSES = new Set(["08", "40", "53", "55", "57", "58"]);
const DETERMINISTIC_SQLSTATES = new Set(["57014", "53400"]);

/** Whether a failed write may succeed if tried again unchanged. */
export function isTransient(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const { code, severity } = e as { code?: unknown; severity?: unknown };
  if (typeof code !== "string") return false;
  // A server error (postgres.js PostgresError): its class says.
  if (typeof severity === "string") return TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2)) && !DETERMINISTIC_SQLSTATES.has(code);
  // postgres.js connection errors (CONNECTION_CLOSED, CONNECT_TIMEOUT, …) and socket errors.
  return /^CONNECT/.test(code) || /^E[A-Z]+$/.test(code);
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// Results that are already the bare minimum of an attempt row.
const bare = new WeakSet<Recorded>();

/** The attempt without what it carried from the request and the response, with a note why. */
function withoutContents(r: Recorded, e: unknown): Recorded {
  const stripped: Recorded = {
    ...r,
    requestHeaders: {},
    requestBody: "",
    // Not stored on the delivery either: its next attempt renders again.
    renderedBody: null,
    outcome: {
      ...r.outcome,
      headers: null,
      body: null,
      error: r.outcome.error === null ? null : r.outcome.error.slice(0, 2000),
      remoteAddress: null,
      notes: [`request and response contents not stored: the attempt could not be stored as it was (${errorMessage(e).slice(0, 500)})`],
    },
  };
  bare.add(stripped);
  return stripped;
}

async function writeOrFailure(w: BatchWriter, b: Batch): Promise<{ failed: unknown } | null> {
  for (let tries = 1; ; tries++) {
    let summary: RecordSummary;
    try {
      summary = await w.write(b);
    } catch (e) {
      if (!isTransient(e)) return { failed: e };
      if (!(await w.transient(e, b, tries))) return null;
      continue;
    }
    // Outside the try: once committed, the batch is never written again, whatever happens here.
    w.written(b, summary);
    return null;
  }
}

/** Writes `b`, splitting it around whatever cannot be written. Throws only what `transient` throws. */
export async function storeBatch(w: BatchWriter, b: Batch): Promise<void> {
  if (b.results.length === 0 && b.park.length === 0 && b.release.length === 0) return;
  const failure = await writeOrFailure(w, b);
  if (failure === null) return;
  const e = failure.failed;
  const { results } = b;
  if (results.length > 0 && b.park.length + b.release.length > 0) {
    await storeBatch(w, { results: [], park: b.park, release: b.release });
    await storeBatch(w, { results, park: [], release: [] });
    return;
  }
  if (results.length > 1) {
    w.logger.debug({ err: e, results: results.length }, "a batch of attempts could not be stored; splitting it");
    const half = Math.ceil(results.length / 2);
    await storeBatch(w, { results: results.slice(0, half), park: [], release: [] });
    await storeBatch(w, { results: results.slice(half), park: [], release: [] });
    return;
  }
  const [r] = results;
  if (r && !bare.has(r)) {
    w.logger.warn({ err: e, delivery: r.d.id, webhook: r.d.subscription_id }, "attempt could not be stored as it was; storing it without its contents");
    await storeBatch(w, { results: [withoutContents(r, e)], park: [], release: [] });
    return;
  }
  if (r) {
    // Not even the bare row: hand the delivery back to the job queue rather than hold it.
    w.logger.error({ err: e, delivery: r.d.id, webhook: r.d.subscription_id }, "attempt could not be recorded; the delivery will be sent again");
    await storeBatch(w, { results: [], park: [], release: [{ id: r.d.id, subscription_id: r.d.subscription_id }] });
    return;
  }
  w.logger.error({ err: e, park: b.park.length, release: b.release.length }, "could not park or release deliveries");
}
