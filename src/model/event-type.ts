// An event type there is to subscribe to, as GET /v1/event-types lists it: where it comes from,
// the JSON Schema of its data (from the tracked table's columns) and an example body per preset.
import { z } from "zod";
import { PAYLOAD_PRESETS } from "./payload";

export const eventTypeSchema = z
  .object({
    type: z.string(),
    source: z.enum(["table", "rule", "custom"]),
    table: z.string().optional().meta({ description: "The tracked table, for table events and rules' derived events." }),
    data_schema: z.record(z.string(), z.unknown()).meta({
      description:
        "JSON Schema of the event's data, from the table's columns (excluded columns left out). bigint and numeric values " +
        "beyond what a double holds exactly arrive as strings of their digits (big_numbers string, the default). Custom types: {} (any).",
    }),
    examples: z
      .object(Object.fromEntries(PAYLOAD_PRESETS.map((p) => [p, z.unknown()])) as Record<(typeof PAYLOAD_PRESETS)[number], z.ZodUnknown>)
      .meta({ description: "The body each preset would send for a made-up event of this type." }),
  })
  .meta({ id: "EventType" });

export type EventTypeInfo = z.output<typeof eventTypeSchema>;
