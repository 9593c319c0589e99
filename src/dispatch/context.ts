// What the dispatch code needs from its owner: our connection, the HTTP sender, a logger.
import type { Connection } from "../db/connection";
import type { Sender } from "../delivery/client";
import type { Logger } from "../logger";

export interface DeliverContext {
  conn: Connection;
  sender: Sender;
  logger: Logger;
}
