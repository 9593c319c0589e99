// Small pieces several admin pages show: status pills, the circuit badge, a rate, a delivery row.
import type { CircuitNotice, DeliveryView } from "../model/delivery";
import type { WebhookView } from "../model/webhook";
import type { WebhookRate } from "../services/webhook-rates";
import { Time, when } from "./layout";

const STATUS_CLASS: Record<string, string> = { succeeded: "ok", failed: "bad", cancelled: "muted", pending: "warn", retrying: "warn" };

export function StatusPill({ status }: { status: string }) {
  return <span class={`pill ${STATUS_CLASS[status] ?? ""}`}>{status}</span>;
}

export function webhookLabel(w: { name: string | null; id: string }): string {
  return w.name ?? `webhook ${w.id.slice(0, 8)}`;
}

export function Circuit({ w }: { w: WebhookView }) {
  const h = w.health;
  if (h.circuit === "closed") {
    return h.consecutive_failures > 0 ? (
      <span class="warn">closed, {h.consecutive_failures} failures in a row</span>
    ) : (
      <span class="ok">closed</span>
    );
  }
  const state = h.circuit === "open" ? "open" : "half-open";
  return (
    <span class="bad">
      {state}, {h.consecutive_failures} failures in a row{h.next_probe_at ? `; next probe ${when(h.next_probe_at)}` : ""}
    </span>
  );
}

export function Rate({ rate }: { rate: WebhookRate | undefined }) {
  if (!rate || rate.success_rate === null) return <span class="muted">no finished deliveries</span>;
  const pct = Math.round(rate.success_rate * 1000) / 10;
  return (
    <span class={pct >= 99 ? "ok" : pct >= 90 ? "warn" : "bad"}>
      {pct}% <span class="muted">of {rate.succeeded + rate.failed}</span>
    </span>
  );
}

export function LastStatus({ rate }: { rate: WebhookRate | undefined }) {
  if (!rate || rate.last_at === null) return <span class="muted">never sent</span>;
  const code = rate.last_status_code;
  return (
    <span>
      <span class={code !== null && code >= 200 && code < 300 ? "ok" : "bad"}>{code ?? rate.last_error?.slice(0, 40) ?? "no answer"}</span>{" "}
      <span class="muted">
        <Time d={rate.last_at} />
      </span>
    </span>
  );
}

/** What a delivery still owed is waiting for, in words. */
export function pendingText(d: DeliveryView, maxAttempts: number | null, circuit: CircuitNotice | undefined): string {
  if (d.status !== "pending" && d.status !== "retrying") return "";
  if (circuit) {
    if (circuit.circuit === "half_open") return "parked: the circuit is half-open, a probe is on its way";
    const probe = circuit.next_probe_at ? `, next probe at ${when(circuit.next_probe_at)}` : "";
    return `parked: circuit open after ${circuit.consecutive_failures} failures${probe}`;
  }
  const next = d.next_attempt_at ? `, next at ${when(d.next_attempt_at)}` : "";
  if (d.attempts === 0) return `waiting for its first attempt${next}`;
  // A replay of a delivery that used up its attempts goes past the policy's count: no "3 of 2".
  const of = maxAttempts !== null && d.attempts < maxAttempts ? ` of ${maxAttempts}` : "";
  return `retrying, attempt ${d.attempts + 1}${of}${next}`;
}

/** Rows of a delivery table; `withWebhook` adds the webhook's column (its name, or its id's start). */
/** A table of deliveries: the header, then a row per delivery (DeliveryRows). */
export function DeliveriesTable({ items, caption, withWebhook, notes }: { items: DeliveryView[]; caption: string; withWebhook?: boolean; notes?: Map<string, string> }) {
  return (
    <table>
      <caption class="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Delivery</th>
          <th scope="col">Event</th>
          {withWebhook ? <th scope="col">Webhook</th> : null}
          <th scope="col">Status</th>
          <th scope="col" class="num">
            Attempts
          </th>
          <th scope="col">Last answer</th>
          <th scope="col">Created</th>
        </tr>
      </thead>
      <tbody>
        <DeliveryRows items={items} withWebhook={withWebhook} notes={notes} />
      </tbody>
    </table>
  );
}

export function DeliveryRows({ items, withWebhook, notes }: { items: DeliveryView[]; withWebhook?: boolean; notes?: Map<string, string> }) {
  return (
    <>
      {items.map((d) => (
        <tr>
          <td>
            <a href={`/admin/deliveries/${d.id}`} class="mono">
              {d.id.slice(0, 8)}
            </a>
          </td>
          <td>{d.event_type}</td>
          {withWebhook ? (
            <td>
              <a href={`/admin/webhooks/${d.webhook_id}`}>{webhookLabel({ id: d.webhook_id, name: d.webhook_name })}</a>
            </td>
          ) : null}
          <td>
            <StatusPill status={d.status} />
            {notes?.get(d.id) ? <div class="hint">{notes.get(d.id)}</div> : null}
          </td>
          <td class="num">{d.attempts}</td>
          <td>{d.last_status_code ?? (d.last_error ? <span class="bad">{d.last_error.slice(0, 60)}</span> : "—")}</td>
          <td>
            <Time d={d.created_at} />
          </td>
        </tr>
      ))}
    </>
  );
}
