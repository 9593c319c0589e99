// `pg-webhooks deliveries list|show`: what was sent where, and how each attempt went.
import type { Command } from "commander";
import { DELIVERY_STATUSES, type DeliveryStatus } from "../model/enums";
import type { AttemptView, DeliveryView } from "../model/delivery";
import { ADMIN } from "../services/scope";
import type { Cli } from "./context";
import { common, integer, oneOf, uuid, when, type CommonOptions } from "./options";
import { renderFields, renderTable, type Column } from "./output";

// The service (zod views) loads when an action runs.
const service = () => import("../services/deliveries.js");

interface ListOptions extends CommonOptions {
  status?: DeliveryStatus;
  webhook?: string;
  event?: string;
  since?: Date;
  until?: Date;
  limit: number;
  cursor?: string;
}


const deliveryColumns: Column<DeliveryView>[] = [
  { header: "id", value: (d) => d.id },
  { header: "webhook", value: (d) => d.webhook_id },
  { header: "name", value: (d) => d.webhook_name, max: 24 },
  { header: "event", value: (d) => d.event_type, max: 32 },
  { header: "status", value: (d) => d.status },
  { header: "attempts", value: (d) => d.attempts },
  { header: "last code", value: (d) => d.last_status_code },
  { header: "last error", value: (d) => d.last_error, max: 40 },
  { header: "created", value: (d) => d.created_at },
];

const attemptColumns: Column<AttemptView>[] = [
  { header: "#", value: (a) => a.attempt_number },
  { header: "started", value: (a) => a.started_at },
  { header: "code", value: (a) => a.response_status },
  { header: "duration", value: (a) => `${a.duration_ms}ms` },
  { header: "address", value: (a) => a.remote_address },
  { header: "error", value: (a) => a.error, max: 40 },
  { header: "response", value: (a) => a.response_body, max: 60 },
  { header: "note", value: (a) => a.note, max: 40 },
];

export function registerDeliveries(program: Command, cli: Cli): void {
  const deliveries = program.command("deliveries").description("inspect deliveries and their attempts");
  deliveries.addHelpText("after", "\nExample:\n  $ pg-webhooks deliveries list --status failed --since 2h\n");

  common(
    deliveries
      .command("list")
      .description("list deliveries, newest first")
      .option("--status <status>", `one of ${DELIVERY_STATUSES.join(", ")}`, oneOf(DELIVERY_STATUSES))
      .option("--webhook <id>", "only this webhook's deliveries", uuid)
      .option("--event <type>", "only this event type (exact, clients.* or *)")
      .option("--since <when>", "created at or after: a duration ago (2h, 7d) or an ISO timestamp", when)
      .option("--until <when>", "created before: a duration ago (30m) or an ISO timestamp", when)
      .option("--limit <n>", "at most this many (1-1000)", integer(1, 1000), 50)
      .option("--cursor <cursor>", "continue from a previous page (printed on stderr when there is more)"),
    "pg-webhooks deliveries list --status failed --webhook 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --since 2h",
  ).action((opts: ListOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { circuitNotices, listDeliveries } = await service();
      const page = await listDeliveries(conn, ADMIN, {
        status: opts.status,
        webhook_id: opts.webhook,
        event: opts.event,
        since: opts.since,
        until: opts.until,
        limit: opts.limit,
        cursor: opts.cursor,
      });
      out.list(page.items, deliveryColumns, { empty: "No deliveries match." });
      if (page.next_cursor) out.notice(`More deliveries: add --cursor ${page.next_cursor}`);
      // Pending deliveries behind an open circuit are not stuck: say why they wait, and until when.
      const webhookIds = opts.webhook !== undefined ? [opts.webhook] : [...new Set(page.items.map((d) => d.webhook_id))];
      for (const c of await circuitNotices(conn, ADMIN, { webhookIds })) out.notice(c.message);
    }),
  );

  common(
    deliveries
      .command("show")
      .description("one delivery with every attempt: response code, duration, error, response excerpt")
      .argument("<id>", "delivery id", uuid),
    "pg-webhooks deliveries show 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f",
  ).action((id: string, opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { getDelivery } = await service();
      const d = await getDelivery(conn, ADMIN, id);
      out.result(d, () => {
        out.say(
          renderFields([
            ["id", d.id],
            ["webhook", d.webhook_name === null ? d.webhook_id : `${d.webhook_id} (${d.webhook_name})`],
            ["event", `${d.event_type} (event id ${d.event_id})`],
            ["tenant", d.tenant],
            ["status", d.status],
            ["attempts", d.attempts.length],
            ["next attempt", d.next_attempt_at],
            ["last error", d.last_error],
            ["created", d.created_at],
            ["finished", d.finished_at],
          ]),
        );
        out.say("");
        if (d.attempts.length === 0) out.say("No attempts yet.");
        else out.say(renderTable(d.attempts, attemptColumns));
      });
    }),
  );
}
