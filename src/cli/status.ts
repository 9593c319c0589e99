// `pg-webhooks status`: outbox lag, work owed, webhooks that need attention (circuit not
// closed, or disabled), and each webhook's last 24 hours.
import type { Command } from "commander";
import { getStatus, type WebhookAttention, type WebhookHealth } from "../services/status";
import type { Cli } from "./context";
import { common, type CommonOptions } from "./options";
import { formatAge, formatRate, renderFields, renderTable, type Column } from "./output";

const webhookColumns: Column<WebhookHealth>[] = [
  { header: "webhook", value: (w) => w.id },
  { header: "name", value: (w) => w.name, max: 24 },
  { header: "url", value: (w) => w.url, max: 48 },
  { header: "active", value: (w) => (w.is_active ? "yes" : "no") },
  { header: "circuit", value: (w) => w.circuit },
  { header: "attempts", value: (w) => w.attempts },
  { header: "success", value: (w) => formatRate(w.success_rate) },
  { header: "median", value: (w) => (w.median_latency_ms === null ? null : `${w.median_latency_ms}ms`) },
  { header: "failed", value: (w) => w.failed_deliveries },
];

const attentionColumns: Column<WebhookAttention>[] = [
  { header: "webhook", value: (w) => w.id },
  { header: "name", value: (w) => w.name, max: 24 },
  { header: "active", value: (w) => (w.is_active ? "yes" : "no") },
  { header: "circuit", value: (w) => w.circuit },
  { header: "failures", value: (w) => w.consecutive_failures },
  { header: "failing since", value: (w) => w.failing_since },
  { header: "next probe", value: (w) => w.next_probe_at },
  { header: "disabled reason", value: (w) => w.disabled_reason, max: 40 },
];

export function registerStatus(program: Command, cli: Cli): void {
  common(
    program
      .command("status")
      .description(
        "outbox lag, pending/retrying/failed deliveries, webhooks whose circuit is open or that are disabled, " +
          "and per-webhook success rate and median latency (24 h)",
      ),
    "pg-webhooks status",
    "pg-webhooks status --json | jq .outbox.lag_ms",
    "pg-webhooks status --json | jq '.attention[] | {id, circuit, consecutive_failures, disabled_reason}'",
  ).action((opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const s = await getStatus(conn);
      out.result(s, () => {
        out.say(
          renderFields([
            ["outbox lag", s.outbox.undispatched === 0 ? "0 (nothing waiting)" : `${formatAge(s.outbox.lag_ms)} (${s.outbox.undispatched} events waiting)`],
            ["pending", s.deliveries.pending],
            ["retrying", s.deliveries.retrying],
            ["failed", s.deliveries.failed],
            ["dispatchers", s.dispatchers.length === 0 ? "none running" : s.dispatchers.map((d) => `${d.hostname}:${d.pid}`).join(", ")],
          ]),
        );
        out.say("");
        if (s.attention.length > 0) {
          out.say("Needs attention (circuit not closed, or disabled):");
          out.say(renderTable(s.attention, attentionColumns));
          out.say("");
        }
        if (s.webhooks.length === 0) out.say("No webhooks yet. Add one with: pg-webhooks webhooks create --url URL --events 'TYPE'");
        else {
          out.say(`Last ${s.window_hours} h per webhook (success = share of attempts answered 2xx):`);
          out.say(renderTable(s.webhooks, webhookColumns));
        }
      });
    }),
  );
}
