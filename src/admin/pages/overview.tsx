// /admin: the last 24 hours at a glance. Webhooks needing attention first (circuit open,
// failing, disabled, with the reason), deliveries by outcome, the success rate per webhook;
// for an admin key also the database side: outbox lag, dispatchers alive, tracked tables.
import type { FastifyInstance } from "fastify";
import type { ApiOptions } from "../../api/app";
import type { WebhookView } from "../../model/webhook";
import { listDispatchers, outboxLag, type Status } from "../../services/status";
import { listTracked, type TrackedTableInfo } from "../../services/tracking";
import { listWebhooks } from "../../services/webhooks";
import { webhookRates, type WebhookRate } from "../../services/webhook-rates";
import { Circuit, LastStatus, Rate, webhookLabel } from "../components";
import { adminScope, pageContext } from "../http";
import { Layout, sendHtml, Time, type PageContext } from "../layout";

const SUFFIX: Record<string, string> = { insert: "created", update: "updated", delete: "deleted" };

function needsAttention(w: WebhookView): boolean {
  return !w.is_active || w.health.circuit !== "closed" || w.health.consecutive_failures > 0;
}

function OverviewPage(props: {
  ctx: PageContext;
  webhooks: WebhookView[];
  rates: Map<string, WebhookRate>;
  status: Pick<Status, "outbox" | "dispatchers"> | null;
  tracked: TrackedTableInfo[];
}) {
  const { ctx, webhooks, rates, status } = props;
  const attention = webhooks.filter(needsAttention).sort((a, b) => Number(a.is_active) - Number(b.is_active));
  const totals = { succeeded: 0, failed: 0, open: 0, cancelled: 0 };
  for (const r of rates.values()) {
    totals.succeeded += r.succeeded;
    totals.failed += r.failed;
    totals.open += r.open;
    totals.cancelled += r.total - r.succeeded - r.failed - r.open;
  }
  const link = (status: string) => `/admin/deliveries?status=${status}&since=24h`;
  return (
    <Layout ctx={ctx} title="Overview" section="overview">
      <h1>Overview</h1>
      <h2>Needs attention</h2>
      {attention.length === 0 ? (
        <p class="ok">Every webhook is active and its endpoint answering.</p>
      ) : (
        <table>
          <caption class="sr-only">Webhooks needing attention</caption>
          <thead>
            <tr>
              <th scope="col">Webhook</th>
              <th scope="col">Why</th>
              <th scope="col">Circuit</th>
              <th scope="col">Last answer</th>
            </tr>
          </thead>
          <tbody>
            {attention.map((w) => (
              <tr>
                <td>
                  <a href={`/admin/webhooks/${w.id}`}>{webhookLabel(w)}</a>
                </td>
                <td>{w.is_active ? "failing" : `disabled: ${w.disabled_reason ?? "no reason recorded"}`}</td>
                <td>
                  <Circuit w={w} />
                </td>
                <td>
                  <LastStatus rate={rates.get(w.id)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Deliveries, last 24 hours</h2>
      <ul class="actions" aria-label="Deliveries by outcome">
        <li>
          <a href={link("succeeded")}>{totals.succeeded} succeeded</a>
        </li>
        <li>
          <a href={link("failed")}>{totals.failed} failed</a>
        </li>
        <li>
          <a href={link("retrying")}>{totals.open} pending or retrying</a>
        </li>
        <li>
          <a href={link("cancelled")}>{totals.cancelled} cancelled</a>
        </li>
      </ul>
      <h2>Success rate per webhook, last 24 hours</h2>
      {webhooks.length === 0 ? (
        <p>
          No webhooks yet. <a href="/admin/webhooks/new">Create one</a>.
        </p>
      ) : (
        <table>
          <caption class="sr-only">Success rate per webhook</caption>
          <thead>
            <tr>
              <th scope="col">Webhook</th>
              <th scope="col">Success</th>
              <th scope="col" class="num">
                Deliveries
              </th>
            </tr>
          </thead>
          <tbody>
            {webhooks.map((w) => (
              <tr>
                <td>
                  <a href={`/admin/webhooks/${w.id}`}>{webhookLabel(w)}</a>
                </td>
                <td>
                  <Rate rate={rates.get(w.id)} />
                </td>
                <td class="num">{rates.get(w.id)?.total ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {status ? (
        <>
          <h2>Database side</h2>
          <dl class="props">
            <dt>Outbox lag</dt>
            <dd class={status.outbox.lag_ms > 60_000 ? "bad" : undefined}>
              {status.outbox.undispatched} events waiting{status.outbox.undispatched > 0 ? `, the oldest for ${Math.round(status.outbox.lag_ms / 1000)} s` : ""}
            </dd>
            <dt>Dispatchers alive</dt>
            <dd class={status.dispatchers.length === 0 ? "bad" : undefined}>
              {status.dispatchers.length === 0
                ? "none: nothing is being delivered"
                : status.dispatchers.map((d) => `${d.hostname} (pid ${d.pid})`).join(", ")}
            </dd>
          </dl>
          <h3>Tracked tables</h3>
          {props.tracked.length === 0 ? (
            <p>
              None. Track one with <code>pg-webhooks track public.clients</code>.
            </p>
          ) : (
            <table>
              <caption class="sr-only">Tracked tables</caption>
              <thead>
                <tr>
                  <th scope="col">Table</th>
                  <th scope="col">Event types</th>
                  <th scope="col">Tenant column</th>
                  <th scope="col">Since</th>
                </tr>
              </thead>
              <tbody>
                {props.tracked.map((t) => (
                  <tr>
                    <td class="mono">{t.table}</td>
                    <td>{t.operations.map((o) => `${t.event_prefix}.${SUFFIX[o] ?? o}`).join(", ")}</td>
                    <td>{t.tenant_column ?? "—"}</td>
                    <td>
                      <Time d={t.tracked_at} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      ) : null}
    </Layout>
  );
}

export function registerOverviewPage(app: FastifyInstance, { conn }: ApiOptions): void {
  app.get("/", async (request, reply) => {
    const scope = adminScope(request);
    const isAdmin = scope.tenant === null;
    const [page, rates, status, tracked] = await Promise.all([
      listWebhooks(conn, scope, { limit: 1000 }),
      webhookRates(conn, scope, null),
      isAdmin ? Promise.all([outboxLag(conn), listDispatchers(conn)]).then(([outbox, dispatchers]) => ({ outbox, dispatchers })) : Promise.resolve(null),
      isAdmin ? listTracked(conn) : Promise.resolve([]),
    ]);
    return sendHtml(reply, <OverviewPage ctx={pageContext(request)} webhooks={page.items} rates={rates} status={status} tracked={tracked} />);
  });
}
