// /admin/webhooks: the list (filter active / paused / failing, search by name or URL), with each
// webhook's health and 24 h success rate, and the active toggle that works in place.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { ApiOptions } from "../../api/app";
import type { WebhookView } from "../../model/webhook";
import { listWebhooks, setWebhookActive } from "../../services/webhooks";
import { webhookRates, type WebhookRate } from "../../services/webhook-rates";
import { Circuit, LastStatus, Rate, webhookLabel } from "../components";
import { field, formOf } from "../forms";
import { adminScope, isHtmx, pageContext, seeOther } from "../http";
import { CsrfField, Layout, sendHtml, type PageContext } from "../layout";
import { registerWebhookEditPages } from "./webhook-edit";
import { registerWebhookPage } from "./webhook";

const PAGE = 50;

const listQuery = z.object({
  show: z.enum(["all", "active", "paused", "failing"]).catch("all"),
  q: z.string().max(200).optional().catch(undefined),
  cursor: z.string().max(500).optional().catch(undefined),
});

type ListQuery = z.output<typeof listQuery>;

export function ActiveToggle({ ctx, w, back }: { ctx: PageContext; w: WebhookView; back: string }) {
  const label = webhookLabel(w);
  const action = `/admin/webhooks/${w.id}/active`;
  return (
    <form method="post" action={action} class="inline" hx-post={action} hx-target="closest tr" hx-swap="outerHTML">
      <CsrfField ctx={ctx} />
      <input type="hidden" name="active" value={w.is_active ? "false" : "true"} />
      <input type="hidden" name="back" value={back} />
      {w.is_active ? <span class="ok">active</span> : <span class="warn">paused</span>}{" "}
      <button type="submit" aria-label={`${w.is_active ? "Pause" : "Enable"} ${label}`}>
        {w.is_active ? "Pause" : "Enable"}
      </button>
      {!w.is_active && w.disabled_reason ? <div class="hint">{w.disabled_reason}</div> : null}
    </form>
  );
}

export function WebhookRow({ ctx, w, rate, back }: { ctx: PageContext; w: WebhookView; rate: WebhookRate | undefined; back: string }) {
  return (
    <tr id={`webhook-${w.id}`}>
      <td>
        <a href={`/admin/webhooks/${w.id}`}>{webhookLabel(w)}</a>
        {w.tenant !== null && ctx.session?.tenant === null ? <div class="hint">tenant {w.tenant}</div> : null}
      </td>
      <td class="mono">{w.url}</td>
      <td>{w.events.join(", ")}</td>
      <td>
        <ActiveToggle ctx={ctx} w={w} back={back} />
      </td>
      <td>
        <Circuit w={w} />
      </td>
      <td>
        <Rate rate={rate} />
      </td>
      <td>
        <LastStatus rate={rate} />
      </td>
    </tr>
  );
}

function WebhooksPage(props: { ctx: PageContext; q: ListQuery; items: WebhookView[]; rates: Map<string, WebhookRate>; next: string | null }) {
  const { ctx, q } = props;
  const nextUrl = props.next
    ? `/admin/webhooks?${new URLSearchParams({ show: q.show, ...(q.q ? { q: q.q } : {}), cursor: props.next }).toString()}`
    : null;
  return (
    <Layout ctx={ctx} title="Webhooks" section="webhooks">
      <h1>Webhooks</h1>
      <div class="actions">
        <a class="button" href="/admin/webhooks/new">
          New webhook
        </a>
      </div>
      <form method="get" action="/admin/webhooks" class="filters" role="search" aria-label="Filter webhooks">
        <div class="field">
          <label for="show">Show</label>
          <select id="show" name="show">
            {(["all", "active", "paused", "failing"] as const).map((s) => (
              <option value={s} selected={q.show === s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="q">Name or URL contains</label>
          <input id="q" name="q" type="search" value={q.q ?? ""} />
        </div>
        <button type="submit">Filter</button>
      </form>
      {props.items.length === 0 ? (
        <p>No webhooks{q.show !== "all" || q.q ? " match" : " yet"}.</p>
      ) : (
        <table>
          <caption class="sr-only">Webhooks</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">URL</th>
              <th scope="col">Events</th>
              <th scope="col">Active</th>
              <th scope="col">Circuit</th>
              <th scope="col">Success, 24 h</th>
              <th scope="col">Last answer</th>
            </tr>
          </thead>
          <tbody>
            {props.items.map((w) => (
              <WebhookRow ctx={ctx} w={w} rate={props.rates.get(w.id)} back={ctx.path} />
            ))}
          </tbody>
        </table>
      )}
      {nextUrl ? (
        <p>
          <a href={nextUrl}>Next page</a>
        </p>
      ) : null}
    </Layout>
  );
}

function safeBack(back: string | undefined, fallback: string): string {
  return back !== undefined && /^\/admin(?:[/?#]|$)/.test(back) && back.length < 2000 ? back : fallback;
}

export function registerWebhookPages(app: FastifyInstance, opts: ApiOptions): void {
  const { conn } = opts;

  app.get("/webhooks", async (request, reply) => {
    const q = listQuery.parse(request.query ?? {});
    const scope = adminScope(request);
    const page = await listWebhooks(conn, scope, {
      limit: PAGE,
      cursor: q.cursor,
      search: q.q?.trim() || undefined,
      is_active: q.show === "active" ? true : q.show === "paused" ? false : undefined,
      failing: q.show === "failing" ? true : undefined,
    });
    const rates = await webhookRates(conn, scope, page.items.map((w) => w.id));
    return sendHtml(reply, <WebhooksPage ctx={pageContext(request)} q={q} items={page.items} rates={rates} next={page.next_cursor} />);
  });

  app.post<{ Params: { id: string } }>("/webhooks/:id/active", async (request: FastifyRequest<{ Params: { id: string } }>, reply) => {
    const form = formOf(request);
    const scope = adminScope(request);
    const w = await setWebhookActive(conn, scope, request.params.id, field(form, "active") === "true");
    const back = safeBack(field(form, "back"), `/admin/webhooks/${w.id}`);
    if (!isHtmx(request)) return seeOther(request, reply, back);
    const rates = await webhookRates(conn, scope, [w.id]);
    return sendHtml(reply, <WebhookRow ctx={pageContext(request)} w={w} rate={rates.get(w.id)} back={back} />, 200, true);
  });

  registerWebhookEditPages(app, opts);
  registerWebhookPage(app, opts);
}
