// The render scenario: µs per delivery to render a body, for the standard body (through
// renderPayload, and the way send.ts renders it), each preset (as code, and the classic preset
// written as JSONata to compare) and a template. Pure CPU in the bench's own process on one
// event of a realistic row; no database, no network. Rounds alternate between the variants, so
// a noisy machine hurts them alike; the figure is the best round.
import { renderBody, renderPayload, type EventForDelivery } from "../../src/delivery/render";
import { payloadOf, type PayloadSpec } from "../../src/model/payload";
import { r2 } from "../harness";

const event: EventForDelivery = {
  event_id: "0b6f7c1e-3d9a-4c55-9a55-5d2d0f0e7c11",
  type: "deal.updated",
  occurred_at: new Date("2026-01-01T12:00:00Z"),
  data: JSON.stringify({
    id: 4242, account_id: "acct_1", name: "Big deal with Acme", stage: "won", amount: 125000.5, currency: "EUR",
    owner_id: 17, tags: ["vip", "eu"], notes: "Signed after the second call; legal review done.", created_at: "2025-12-01T09:00:00Z",
  }),
  previous_attributes: JSON.stringify({ stage: "negotiation" }),
  tenant: "acct_1",
  source_table: "public.deals",
  big_numbers: "string",
};
const ctx = {
  webhook: { id: "6a1d1f3e-0000-4000-8000-000000000001", name: "crm" },
  deliveryId: "6a1d1f3e-0000-4000-8000-000000000002",
  organization: { id: "acct_1", name: "Acme Inc.", slug: "acme", metadata: { plan: "pro" } },
  primaryKey: ["id"],
};

// What send.ts does for a standard webhook: read the stored payload column, render today's body.
const STANDARD_AS_SENT = "standard, as send.ts";
const variants: [string, PayloadSpec][] = [
  ["standard", { preset: "standard" }],
  [STANDARD_AS_SENT, { preset: "standard" }],
  ["classic (code)", { preset: "classic" }],
  ["thin (code)", { preset: "thin" }],
  ["slack (code)", { preset: "slack" }],
  [
    "classic as JSONata",
    {
      template:
        '{"event": type, "timestamp": timestamp, "data": data, "changes": changes, ' +
        '"organization": $organization ? {"id": $organization.id, "name": $organization.name, "slug": $organization.slug} : null, ' +
        '"metadata": {"webhook_id": $webhook.id, "webhook_name": $webhook.name, "delivery_id": $delivery.id, "event_id": id}}',
    },
  ],
  ["slack template", { template: '{"text": "Deal *" & data.name & "* moved from " & previous_attributes.stage & " to " & data.stage}' }],
];

/** Figure keys: the variants' names as report keys. */
const KEY: Record<string, string> = {
  standard: "standard",
  [STANDARD_AS_SENT]: "standard_as_sent",
  "classic (code)": "classic",
  "thin (code)": "thin",
  "slack (code)": "slack",
  "classic as JSONata": "classic_as_jsonata",
  "slack template": "slack_template",
};

/** µs per delivery of each variant (best of 3 rounds of `n` renders), and each as a multiple of the standard body. */
export async function render(smoke: boolean) {
  const N = smoke ? 500 : 20_000;
  const rounds = 3;
  const results = new Map<string, number[]>();
  for (const [, spec] of variants) for (let i = 0; i < (smoke ? 50 : 500); i++) await renderPayload(spec, event, ctx); // warm up
  for (let r = 0; r < rounds; r++) {
    for (const [name, spec] of variants) {
      const t0 = process.hrtime.bigint();
      if (name === STANDARD_AS_SENT) {
        const column: unknown = { preset: "standard" };
        for (let i = 0; i < N; i++) if ("preset" in payloadOf(column)) renderBody(event);
      } else for (let i = 0; i < N; i++) await renderPayload(spec, event, ctx);
      const us = Number(process.hrtime.bigint() - t0) / 1000 / N;
      results.set(name, [...(results.get(name) ?? []), us]);
    }
  }
  const best = (name: string) => Math.min(...(results.get(name) ?? [Infinity]));
  const std = best("standard");
  return {
    renders_each: N,
    us_per_delivery: Object.fromEntries(variants.map(([name]) => [KEY[name] ?? name, r2(best(name))])),
    times_standard: Object.fromEntries(variants.map(([name]) => [KEY[name] ?? name, r2(best(name) / std)])),
  };
}
