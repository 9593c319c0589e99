// /admin/deliveries (all, or one webhook's): filters kept in the URL, keyset paging, rows that
// are links, a live toggle; /admin/deliveries/:id: the body as sent, every attempt, Retry now.
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ApiOptions } from "../../api/app";
import { DELIVERY_STATUSES } from "../../model/enums";
import type { AttemptView, DeliveryDetail, DeliveryView } from "../../model/delivery";
import { retryPolicySchema } from "../../model/retry-policy";
import { cancelDelivery, circuitNotices, getDelivery, listDeliveries, RESPONSE_CLASSES, retryDelivery } from "../../services/deliveries";
import { isUuid } from "../../services/cursor";
import { getWebhook, listWebhooks } from "../../services/webhooks";
import { parseSince } from "../../util/duration";
import { DeliveriesTable, StatusPill, pendingText, webhookLabel } from "../components";
import { adminScope, isHtmx, pageContext, seeOther } from "../http";
import { CsrfField, Layout, sendHtml, Time, type PageContext } from "../layout";

const PAGE = 50;
const PRESETS = ["1h", "24h", "7d", "30d"] as const;

const blankToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const optionalText = z.preprocess(blankToUndefined, z.string().max(200).optional());

/** The filters as the URL carries them; a value that makes no sense is an error shown above the list. */
const filterQuery = z.object({
  status: z.preprocess(blankToUndefined, z.enum(DELIVERY_STATUSES).optional()),
  event: optionalText,
  webhook: optionalText,
  tenant: optionalText,
  response: z.preprocess(blankToUndefined, z.enum(RESPONSE_CLASSES).optional()),
  since: optionalText,
  until: optionalText,
  id: optionalText,
  cursor: z.preprocess(blankToUndefined, z.string().max(500).optional()),
  live: z.preprocess(blankToUndefined, z.literal("1").optional()),
});

type FilterQuery = z.output<typeof filterQuery>;

function queryString(q: FilterQuery, extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...q, cursor: undefined, ...extra })) if (v !== undefined && v !== "") params.set(k, v);
  const s = params.toString();
  return s === "" ? "" : `?${s}`;
}

function when(text: string | undefined, name: string, problems: string[]): Date | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSince(text);
  } catch (e) {
    problems.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

function Filters({ q, webhooks, isAdmin }: { q: FilterQuery; webhooks: { id: string; label: string }[]; isAdmin: boolean }) {
  return (
    <form method="get" action="/admin/deliveries" class="filters" role="search" aria-label="Filter deliveries">
      <div class="field">
        <label for="f-status">Status</label>
        <select id="f-status" name="status">
          <option value="">any</option>
          {DELIVERY_STATUSES.map((s) => (
            <option value={s} selected={q.status === s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-webhook">Webhook</label>
        <select id="f-webhook" name="webhook">
          <option value="">any</option>
          {webhooks.map((w) => (
            <option value={w.id} selected={q.webhook === w.id}>
              {w.label}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-event">Event type</label>
        <input id="f-event" name="event" type="text" value={q.event ?? ""} placeholder="clients.*" />
      </div>
      {isAdmin ? (
        <div class="field">
          <label for="f-tenant">Tenant</label>
          <input id="f-tenant" name="tenant" type="text" value={q.tenant ?? ""} />
        </div>
      ) : null}
      <div class="field">
        <label for="f-response">Last answer</label>
        <select id="f-response" name="response">
          <option value="">any</option>
          {RESPONSE_CLASSES.map((c) => (
            <option value={c} selected={q.response === c}>
              {c === "none" ? "no answer" : c}
            </option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for="f-since">Since</label>
        <input id="f-since" name="since" type="text" list="since-presets" value={q.since ?? ""} placeholder="24h or 2026-01-31T09:00:00Z" />
        <datalist id="since-presets">
          {PRESETS.map((p) => (
            <option value={p} />
          ))}
        </datalist>
      </div>
      <div class="field">
        <label for="f-until">Until</label>
        <input id="f-until" name="until" type="text" value={q.until ?? ""} placeholder="1h or an ISO time" />
      </div>
      <div class="field">
        <label for="f-id">Delivery or event id</label>
        <input id="f-id" name="id" type="text" value={q.id ?? ""} />
      </div>
      <div class="field row">
        <input type="checkbox" id="f-live" name="live" value="1" checked={q.live === "1"} data-submit />
        <label for="f-live">Live (refresh every 3 s)</label>
      </div>
      <button type="submit">Apply</button>
      <a href="/admin/deliveries">Clear</a>
    </form>
  );
}

function DeliveryTable(props: { q: FilterQuery; items: DeliveryView[]; next: string | null; notes: Map<string, string> }) {
  const { q } = props;
  const self = `/admin/deliveries${queryString(q)}`;
  const live = q.live === "1";
  return (
    <div
      id="delivery-list"
      data-live={live ? "" : undefined}
      hx-get={live ? self : undefined}
      hx-trigger={live ? "every 3s" : undefined}
      hx-select="#delivery-list"
      hx-swap="outerHTML"
      aria-live={live ? "polite" : undefined}
    >
      {props.items.length === 0 ? (
        <p>No deliveries match.</p>
      ) : (
        <DeliveriesTable items={props.items} caption="Deliveries, newest first" withWebhook notes={props.notes} />
      )}
      {props.next ? (
        <p>
          <a href={`/admin/deliveries${queryString(q, { cursor: props.next })}`}>Older deliveries</a>
        </p>
      ) : null}
    </div>
  );
}

function DeliveriesPage(props: {
  ctx: PageContext;
  q: FilterQuery;
  problems: string[];
  webhooks: { id: string; label: string }[];
  items: DeliveryView[];
  notes: Map<string, string>;
  next: string | null;
}) {
  return (
    <Layout
      ctx={props.ctx}
      title="Deliveries"
      section="deliveries"
      head={props.q.live === "1" ? <noscript><meta http-equiv="refresh" content="5" /></noscript> : undefined}
    >
      <h1>Deliveries</h1>
      <Filters q={props.q} webhooks={props.webhooks} isAdmin={props.ctx.session?.tenant === null} />
      <nav aria-label="Time presets" class="actions">
        {PRESETS.map((p) => (
          <a href={`/admin/deliveries${queryString({ ...props.q, since: p, until: undefined })}`} aria-current={props.q.since === p ? "true" : undefined}>
            Last {p}
          </a>
        ))}
      </nav>
      {props.problems.length > 0 ? (
        <div class="notice bad" role="alert">
          {props.problems.map((p) => (
            <p>{p}</p>
          ))}
        </div>
      ) : null}
      <div class="actions">
        <a class="button" href={`/admin/replay${queryString({ ...props.q, live: undefined })}`}>
          Replay the matching deliveries…
        </a>
      </div>
      <DeliveryTable q={props.q} items={props.items} next={props.next} notes={props.notes} />
    </Layout>
  );
}

function headerText(headers: Record<string, string> | null): string {
  return headers === null ? "" : Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join("\n");
}

function pretty(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

/** A POSIX-shell single-quoted word. */
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function curlOf(a: AttemptView): string {
  const headers = Object.entries(a.request_headers).map(([k, v]) => ` \\\n  -H ${sh(`${k}: ${v}`)}`);
  return `curl -X ${a.method} ${sh(a.url)}${headers.join("")} \\\n  --data-binary ${sh(a.request_body)}`;
}

function Attempt({ a }: { a: AttemptView }) {
  const ok = a.response_status !== null && a.response_status >= 200 && a.response_status < 300;
  return (
    <li>
      <h3>
        Attempt {a.attempt_number}: <span class={ok ? "ok" : "bad"}>{a.response_status ?? "no answer"}</span> in {a.duration_ms} ms,{" "}
        <Time d={a.started_at} />
      </h3>
      {a.error ? <p class="bad">{a.error}</p> : null}
      {a.note ? <p class="muted">{a.note}</p> : null}
      <details>
        <summary>Request headers (secrets masked)</summary>
        <pre>{`${a.method} ${a.url}\n${headerText(a.request_headers)}`}</pre>
      </details>
      <details>
        <summary>Response</summary>
        <pre>{headerText(a.response_headers) || "(no headers)"}</pre>
        <pre>{a.response_body ?? "(no body)"}</pre>
      </details>
    </li>
  );
}

function DeliveryPage({ ctx, d, webhookName, note, message }: { ctx: PageContext; d: DeliveryDetail; webhookName: string; note: string; message?: string | undefined }) {
  const first = d.attempts[0];
  const last = d.attempts[d.attempts.length - 1];
  const finished = d.status === "succeeded" || d.status === "failed" || d.status === "cancelled";
  return (
    <Layout ctx={ctx} title={`Delivery ${d.id.slice(0, 8)}`} section="deliveries">
      <h1>
        Delivery <span class="mono">{d.id}</span>
      </h1>
      {message ? (
        <p class="notice" role="status">
          {message}
        </p>
      ) : null}
      <dl class="props">
        <dt>Status</dt>
        <dd>
          <StatusPill status={d.status} /> {note}
        </dd>
        <dt>Webhook</dt>
        <dd>
          <a href={`/admin/webhooks/${d.webhook_id}`}>{webhookName}</a>
        </dd>
        <dt>Event</dt>
        <dd>
          {d.event_type} <span class="mono muted">{d.event_id}</span> (<a href={`/admin/deliveries?id=${d.event_id}`}>its other deliveries</a>)
        </dd>
        {d.tenant !== null ? (
          <>
            <dt>Tenant</dt>
            <dd>{d.tenant}</dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>
          <Time d={d.created_at} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time d={d.finished_at} />
        </dd>
      </dl>
      <div class="actions">
        {finished || d.status === "retrying" ? (
          <form method="post" action={`/admin/deliveries/${d.id}/retry`}>
            <CsrfField ctx={ctx} />
            <button type="submit" class="primary">
              Retry now
            </button>
          </form>
        ) : null}
        {finished ? null : (
          <form method="post" action={`/admin/deliveries/${d.id}/cancel`}>
            <CsrfField ctx={ctx} />
            <button type="submit" class="danger">
              Cancel this delivery
            </button>
          </form>
        )}
      </div>
      <h2>Body as sent</h2>
      {first ? (
        <>
          <pre id="body-text">{pretty(first.request_body)}</pre>
          <button type="button" data-copy="body-text" hidden>
            Copy the body
          </button>
        </>
      ) : (
        <p>Not sent yet: there is no attempt.</p>
      )}
      <h2>Attempts</h2>
      {d.attempts.length === 0 ? <p>None yet.</p> : <ol class="timeline">{d.attempts.map((a) => <Attempt a={a} />)}</ol>}
      {last ? (
        <details>
          <summary>Copy as curl (secrets masked)</summary>
          <pre id="curl-text">{curlOf(last)}</pre>
          <button type="button" data-copy="curl-text" hidden>
            Copy the curl command
          </button>
        </details>
      ) : null}
    </Layout>
  );
}

export function registerDeliveryPages(app: FastifyInstance, { conn }: ApiOptions): void {
  app.get("/deliveries", async (request, reply) => {
    const scope = adminScope(request);
    const parsed = filterQuery.safeParse(request.query ?? {});
    const problems: string[] = [];
    const q: FilterQuery = parsed.success ? parsed.data : {};
    if (!parsed.success) problems.push(...parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
    if (q.id !== undefined && isUuid(q.id)) {
      // An exact delivery id opens it; anything else is taken as an event id.
      const found = await listDeliveries(conn, scope, { event_id: q.id, limit: 1 });
      if (found.items.length === 0) {
        try {
          const d = await getDelivery(conn, scope, q.id);
          return reply.code(303).header("location", `/admin/deliveries/${d.id}`).send("");
        } catch {
          // Neither: the list below is empty.
        }
      }
    } else if (q.id !== undefined) problems.push("id: expected a delivery or event id (a UUID)");
    const since = when(q.since, "since", problems);
    const until = when(q.until, "until", problems);
    const [page, hooks] = await Promise.all([
      problems.length > 0
        ? Promise.resolve({ items: [], next_cursor: null })
        : listDeliveries(conn, scope, {
            status: q.status,
            event: q.event,
            webhook_id: q.webhook,
            tenant: q.tenant,
            response_class: q.response,
            since,
            until,
            event_id: q.id,
            limit: PAGE,
            cursor: q.cursor,
          }),
      listWebhooks(conn, scope, { limit: 1000 }),
    ]);
    const policies = new Map(hooks.items.map((w) => [w.id, retryPolicySchema.safeParse(w.retry)]));
    const owed = page.items.filter((d) => d.status === "pending" || d.status === "retrying");
    const circuits = await circuitNotices(conn, scope, { webhookIds: [...new Set(owed.map((d) => d.webhook_id))] });
    const open = new Map(circuits.map((c) => [c.webhook_id, c]));
    const notes = new Map<string, string>();
    for (const d of owed) {
      const p = policies.get(d.webhook_id);
      notes.set(d.id, pendingText(d, p?.success ? p.data.max_attempts : null, open.get(d.webhook_id)));
    }
    const webhooks = hooks.items.map((w) => ({ id: w.id, label: webhookLabel(w) }));
    const ctx = pageContext(request);
    if (isHtmx(request)) {
      return sendHtml(reply, <DeliveryTable q={q} items={page.items} next={page.next_cursor} notes={notes} />, 200, true);
    }
    return sendHtml(
      reply,
      <DeliveriesPage ctx={ctx} q={q} problems={problems} webhooks={webhooks} items={page.items} notes={notes} next={page.next_cursor} />,
      problems.length > 0 ? 400 : 200,
    );
  });

  async function deliveryPage(request: { params: { id: string } } & Parameters<typeof adminScope>[0], message?: string) {
    const scope = adminScope(request);
    const d = await getDelivery(conn, scope, request.params.id);
    const w = await getWebhook(conn, scope, d.webhook_id).catch(() => null);
    const policy = w ? retryPolicySchema.safeParse(w.retry) : null;
    const circuits = d.status === "pending" || d.status === "retrying" ? await circuitNotices(conn, scope, { deliveryIds: [d.id] }) : [];
    const { attempts: _a, ...view } = d;
    const note = pendingText({ ...view, attempts: d.attempts.length }, policy?.success ? policy.data.max_attempts : null, circuits[0]);
    return <DeliveryPage ctx={pageContext(request)} d={d} webhookName={w ? webhookLabel(w) : "a deleted webhook"} note={note} message={message} />;
  }

  app.get<{ Params: { id: string } }>("/deliveries/:id", async (request, reply) => {
    const q = request.query as { retried?: string; cancelled?: string } | undefined;
    const message =
      q?.retried === "1"
        ? "Queued: it goes out within seconds."
        : q?.retried === "0"
          ? "Not queued: its first attempt is on its way, it is being sent right now, or it waits for its circuit's probe."
          : q?.cancelled === "1"
            ? "Cancelled: it will not be sent again (it can still be replayed)."
            : q?.cancelled === "0"
              ? "It had finished already; nothing to cancel."
              : undefined;
    return sendHtml(reply, await deliveryPage(request, message));
  });

  app.post<{ Params: { id: string } }>("/deliveries/:id/retry", async (request, reply) => {
    const r = await retryDelivery(conn, adminScope(request), request.params.id);
    return seeOther(request, reply, `/admin/deliveries/${request.params.id}?retried=${r.queued ? 1 : 0}`);
  });

  app.post<{ Params: { id: string } }>("/deliveries/:id/cancel", async (request, reply) => {
    const r = await cancelDelivery(conn, adminScope(request), request.params.id);
    return seeOther(request, reply, `/admin/deliveries/${request.params.id}?cancelled=${r.cancelled ? 1 : 0}`);
  });
}
