// An event type there is to subscribe to, as GET /v1/event-types lists it.
import { z } from "zod";

export const eventTypeSchema = z
  .object({
    type: z.string(),
    source: z.enum(["table", "rule", "custom"]),
    table: z.string().optional().meta({ description: "The tracked table, for table events and rules' derived events." }),
  })
  .meta({ id: "EventType" });

export type EventTypeInfo = z.output<typeof eventTypeSchema>;
