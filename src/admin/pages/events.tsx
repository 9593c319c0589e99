// /admin/events: the event catalog — every type there is to subscribe to (tracked tables' own,
// rule-derived, custom emit() types), grouped by table, each with its data's JSON Schema, the body
// every payload preset sends for it, and the webhooks (in the key's scope) that receive it.
import type { FastifyInstance } from "fastify";
import type { ApiOptions } from "../../api/app";
import type { EventTypeInfo } from "../../model/event-type";
import { typeMatches } from "../../model/filter";
import { PAYLOAD_PRESETS } from "../../model/payload";
import type { WebhookView } from "../../model/webhook";
import { listEventTypes } from "../../services/event-types";
import { listWebhooks } from "../../services/webhooks";
import { webhookLabel } from "../components";
import { adminScope, pageContext } from "../http";
import { Layout, sendHtml, type PageContext } from "../layout";

/** Types by group: a table's name, "custom" for emit() types; in the catalog's own order. */
export function groupTypes(types: EventTypeInfo[]): { group: string; types: EventTypeInfo[] }[] {
  const groups = new Map<string, EventTypeInfo[]>();
  for (const t of types) {
    const group = t.table ?? "custom";
    groups.set(group, [...(groups.get(group) ?? []), t]);
  }
  return [...groups].map(([group, list]) => ({ group, types: list }));
}

function Receivers({ type, webhooks }: { type: string; webhooks: WebhookView[] }) {
  const receiving = webhooks.filter((w) => typeMatches(w.events, type));
  if (receiving.length === 0) return <p class="muted">No webhook receives it yet.</p>;
  return (
    <p>
      Received by:{" "}
      {receiving.map((w, i) => (
        <>
          {i > 0 ? ", " : null}
          <a href={`/admin/webhooks/${w.id}`}>{webhookLabel(w)}</a>
          {w.is_active ? null : <span class="warn"> (paused)</span>}
        </>
      ))}
    </p>
  );
}

function slug(type: string): string {
  return `type-${type.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

function EventTypeSection({ t, webhooks }: { t: EventTypeInfo; webhooks: WebhookView[] }) {
  const origin = t.source === "table" ? `from table ${t.table ?? ""}` : t.source === "rule" ? `a rule on ${t.table ?? ""}` : "custom (webhooks.emit)";
  return (
    <section id={slug(t.type)} aria-labelledby={`${slug(t.type)}-h`}>
      <h3 id={`${slug(t.type)}-h`} class="mono">
        {t.type}
      </h3>
      <p class="hint">
        {origin} · <a href={`/admin/deliveries?event=${encodeURIComponent(t.type)}`}>its deliveries</a>
      </p>
      <Receivers type={t.type} webhooks={webhooks} />
      <details>
        <summary>Data schema</summary>
        <pre>{JSON.stringify(t.data_schema, null, 2)}</pre>
      </details>
      {PAYLOAD_PRESETS.map((preset) => (
        <details>
          <summary>Example body: {preset}</summary>
          <pre>{JSON.stringify(t.examples[preset], null, 2)}</pre>
        </details>
      ))}
    </section>
  );
}

function EventsPage({ ctx, types, webhooks }: { ctx: PageContext; types: EventTypeInfo[]; webhooks: WebhookView[] }) {
  const groups = groupTypes(types);
  return (
    <Layout ctx={ctx} title="Event catalog" section="events">
      <h1>Event catalog</h1>
      <p class="hint">
        The event types there are to subscribe to. A webhook's events can also be a pattern: <code>clients.*</code> (every type of
        a table) or <code>*</code>. Example bodies are made up from the table's columns; a webhook's own page previews its body
        for real events.
      </p>
      {types.length === 0 ? (
        <p>
          No event types yet. Track a table (<code>pg-webhooks track public.clients</code>) or emit one from SQL (
          <code>{`select webhooks.emit('invoice.paid', '{"id": 1}')`}</code>).
        </p>
      ) : (
        <nav aria-label="Event types by table">
          <ul>
            {groups.map((g) => (
              <li>
                {g.group}:{" "}
                {g.types.map((t, i) => (
                  <>
                    {i > 0 ? ", " : null}
                    <a href={`#${slug(t.type)}`}>{t.type}</a>
                  </>
                ))}
              </li>
            ))}
          </ul>
        </nav>
      )}
      {groups.map((g) => (
        <section aria-labelledby={`group-${slug(g.group)}`}>
          <h2 id={`group-${slug(g.group)}`}>{g.group === "custom" ? "Custom types" : g.group}</h2>
          {g.types.map((t) => (
            <EventTypeSection t={t} webhooks={webhooks} />
          ))}
        </section>
      ))}
    </Layout>
  );
}

export function registerEventPages(app: FastifyInstance, opts: ApiOptions): void {
  const { conn } = opts;
  app.get("/events", async (request, reply) => {
    const scope = adminScope(request);
    const [types, webhooks] = await Promise.all([listEventTypes(conn, scope), listWebhooks(conn, scope, { limit: 1000 })]);
    return sendHtml(reply, <EventsPage ctx={pageContext(request)} types={types} webhooks={webhooks.items} />);
  });
}
