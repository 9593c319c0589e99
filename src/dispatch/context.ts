// What the dispatch code needs from its owner: our connection, the HTTP sender, a logger,
// and (optionally) somewhere to count what it does.
import type { Connection } from "../db/connection";
import type { Sender } from "../delivery/client";
import type { Logger } from "../logger";
import type { BreakerSettings } from "../model/circuit";
import type { DeliveryStatus } from "../model/enums";

/** What recording an attempt makes of its delivery: final, or scheduled for another attempt. */
export type SettledStatus = Extract<DeliveryStatus, "succeeded" | "failed" | "retrying">;

/** What the dispatcher reports as it works; src/metrics.ts turns it into Prometheus series. */
export interface DispatchObserver {
  /** One HTTP attempt finished (or was refused before sending). */
  attempt(webhookId: string, outcome: "success" | "failure", durationMs: number): void;
  /** A delivery reached a final state, or was scheduled for another attempt. */
  delivery(webhookId: string, status: SettledStatus): void;
}

export interface DeliverContext {
  conn: Connection;
  sender: Sender;
  logger: Logger;
  observer?: DispatchObserver;
  /** Circuit breaker and auto-disable settings; DEFAULT_BREAKER when absent. */
  breaker?: BreakerSettings;
}
