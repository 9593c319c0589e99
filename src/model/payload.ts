// A webhook's payload: which body its requests carry. A preset by name, or a JSONata template
// (compiled and guarded by delivery/template.ts). The shape is checked here; a template's
// syntax when it is saved (services/webhooks.ts), so the error can name its position.
import { z } from "zod";
import { expectedOneOf, storable, strictObject } from "./validation";

export const PAYLOAD_PRESETS = ["standard", "classic", "thin", "slack", "discord"] as const;
export type PayloadPreset = (typeof PAYLOAD_PRESETS)[number];

/** Templates longer than this are refused (a template is code run per delivery). */
export const MAX_TEMPLATE_CHARS = 16 * 1024;

export type PayloadSpec = { preset: PayloadPreset } | { template: string };

export const DEFAULT_PAYLOAD: PayloadSpec = { preset: "standard" };

const PAYLOAD_SHAPE = `expected {"preset": ${PAYLOAD_PRESETS.map((p) => JSON.stringify(p)).join(" | ")}} or {"template": "<JSONata expression>"}`;

// One object with either field (not a union): each field's own message survives.
export const payloadSchema = strictObject({
  preset: z.enum(PAYLOAD_PRESETS, { error: expectedOneOf("preset", PAYLOAD_PRESETS) }).optional(),
  template: z
    .string({ error: "expected a JSONata expression (a string)" })
    .min(1, { error: 'expected a JSONata expression, such as {"text": type}' })
    .max(MAX_TEMPLATE_CHARS, { error: `expected a template of at most ${MAX_TEMPLATE_CHARS} characters` })
    .check(storable)
    .optional(),
})
  .superRefine((p, ctx) => {
    if ((p.preset === undefined) === (p.template === undefined)) ctx.addIssue({ code: "custom", message: PAYLOAD_SHAPE });
  })
  .transform((p): PayloadSpec => (p.template !== undefined ? { template: p.template } : { preset: p.preset ?? "standard" }))
  .meta({
    id: "Payload",
    description:
      'The body requests carry. {"preset": "standard"} (default): {id, type, timestamp, data, previous_attributes?}. ' +
      '"classic": {event, timestamp, data, changes, organization, metadata {webhook_id, webhook_name, delivery_id, event_id}}. ' +
      '"thin": {id, type, timestamp, data} with data holding only the row\'s primary key. "slack": {"text": …}; "discord": {"content": …} ' +
      '(at most 2,000 characters). {"template": "<JSONata>"}: any JSON built from the event (id, type, timestamp, data, ' +
      "previous_attributes, changes, tenant) and $webhook {id, name}, $delivery {id}, $organization {id, name, slug, metadata}. " +
      "A template changes the body only; the URL, method and headers stay as configured. It is checked when saved, and each " +
      "delivery's body is rendered once: retries and replays send the same bytes.",
    examples: [{ preset: "classic" }, { template: '{"text": type & " " & $string(data.id)}' }],
  });

/**
 * A stored payload column read back (anything unexpected is the standard body). Checked by
 * hand, not by zod: every send reads one, and the column's CHECK constraint already holds.
 */
export function payloadOf(raw: unknown): PayloadSpec {
  if (typeof raw !== "object" || raw === null) return DEFAULT_PAYLOAD;
  const r = raw as Record<string, unknown>;
  if (typeof r.template === "string") return { template: r.template };
  const preset = r.preset;
  return typeof preset === "string" && (PAYLOAD_PRESETS as readonly string[]).includes(preset)
    ? { preset: preset as PayloadPreset }
    : DEFAULT_PAYLOAD;
}
