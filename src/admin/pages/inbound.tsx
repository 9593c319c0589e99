// /admin/inbound: inbound sources (create one, see its URL and how it verifies, enable, disable,
// delete; secrets are write-only, a generated one is shown once) and /admin/inbound/events: the
// events received, filters kept in the URL, one event's headers and body, replay.
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ApiOptions } from "../../api/app";
import { DomainError } from "../../errors";
import { INBOUND_SCHEMES, INBOUND_STATUSES, sourceCreateSchema, type SourceView } from "../../model/inbound";
import { parseInput } from "../../model/validation";
import { getInboundEvent, listInboundEvents, replayInboundEvents, replaySummary, type InboundEventDetail, type InboundEventView } from "../../services/inbound-events";
import { createSource, deleteSource, getSource, listSources, updateSource } from "../../services/inbound-sources";
import { parseSince } from "../../util/duration";
import { StatusPill } from "../components";
import { errorsByField, field, formOf } from "../forms";
import { adminScope, pageContext, seeOther } from "../http";
import { CsrfField, FieldError, Layout, sendHtml, Time, type PageContext } from "../layout";

const PAGE = 50;

function SourcesPage(props: { ctx: PageContext; sources: SourceView[]; created?: { source: SourceView; secret: string | null }; errors?: Map<string, string> }) {
  const { ctx, errors } = props;
  const isAdmin = ctx.session?.tenant === null;
  // An error on a field this form does not have (hmac options, say) is shown above it, with its path.
  const shown = new Set(["", "slug", "verify", "secrets", "secrets.0", "tenant", "relay_prefix"]);
  const elsewhere = [...(errors ?? [])].filter(([path]) => !shown.has(path)).map(([path, message]) => `${path}: ${message}`);
  const general = [errors?.get(""), ...elsewhere].filter((m): m is string => m !== undefined && m !== "");
  return (
    <Layout ctx={ctx} title="Inbound sources" section="inbound">
      <h1>Inbound sources</h1>
      <p>
        Other systems POST to <span class="mono">/in/&lt;slug&gt;</span> (or <span class="mono">/in/&lt;slug&gt;/&lt;event_name&gt;</span>
        ). Verified requests become rows of webhooks.inbound_events: <a href="/admin/inbound/events">see the events</a>.
      </p>
      {props.created ? (
        <div class="notice" role="status">
          <p>
            Created source {props.created.source.slug}: senders POST to <span class="mono">{props.created.source.url_path}</span>.
          </p>
          {props.created.secret !== null ? (
            <>
              <p>The generated secret, shown this once: give it to the sender now.</p>
              <pre id="new-secret">{props.created.secret}</pre>
            </>
          ) : null}
        </div>
      ) : null}
      {general.length > 0 ? (
        <div class="notice bad" role="alert">
          {general.map((m) => (
            <p>{m}</p>
          ))}
        </div>
      ) : null}
      <h2>New source</h2>
      <form method="post" action="/admin/inbound" class="filters">
        <CsrfField ctx={ctx} />
        <div class="field">
          <label for="src-slug">Slug</label>
          <input id="src-slug" name="slug" type="text" required aria-invalid={errors?.has("slug") ? "true" : undefined} aria-describedby="src-slug-error" />
          <FieldError id="src-slug-error" message={errors?.get("slug")} />
        </div>
        <div class="field">
          <label for="src-verify">Verification</label>
          <select id="src-verify" name="verify">
            {INBOUND_SCHEMES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
          <span class="hint">hmac needs its header and encoding options: create such a source with the API or `pg-webhooks inbound create --hmac`.</span>
          <FieldError id="src-verify-error" message={errors?.get("verify")} />
        </div>
        <div class="field">
          <label for="src-secret">Secret or key</label>
          <input id="src-secret" name="secret" type="password" autocomplete="off" aria-describedby="src-secret-hint src-secret-error" aria-invalid={errors?.has("secrets") ? "true" : undefined} />
          <span class="hint" id="src-secret-hint">
            Blank: generated for standard, api_key and hmac. Never shown again.
          </span>
          <FieldError id="src-secret-error" message={errors?.get("secrets") ?? errors?.get("secrets.0")} />
        </div>
        <div class="field">
          <label for="src-name">Name</label>
          <input id="src-name" name="name" type="text" />
        </div>
        {isAdmin ? (
          <div class="field">
            <label for="src-tenant">Tenant</label>
            <input id="src-tenant" name="tenant" type="text" aria-describedby="src-tenant-error" />
            <FieldError id="src-tenant-error" message={errors?.get("tenant")} />
          </div>
        ) : null}
        <div class="field">
          <label for="src-relay">Relay as</label>
          <input id="src-relay" name="relay_prefix" type="text" placeholder="inbound.stripe" aria-describedby="src-relay-error" />
          <FieldError id="src-relay-error" message={errors?.get("relay_prefix")} />
        </div>
        <button type="submit" class="primary">
          Create source
        </button>
      </form>
      <h2>Sources</h2>
      {props.sources.length === 0 ? (
        <p>No inbound sources yet.</p>
      ) : (
        <table>
          <caption class="sr-only">Inbound sources</caption>
          <thead>
            <tr>
              <th scope="col">Slug</th>
              <th scope="col">Name</th>
              <th scope="col">Tenant</th>
              <th scope="col">Verification</th>
              <th scope="col">Secrets</th>
              <th scope="col">Relay</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {props.sources.map((s) => (
              <tr>
                <td class="mono">
                  <a href={`/admin/inbound/events?source=${encodeURIComponent(s.slug)}`}>{s.url_path}</a>
                </td>
                <td>{s.name ?? "—"}</td>
                <td>{s.tenant ?? (s.allowed_tenants ? `X-Tenant-ID: ${s.allowed_tenants.join(", ")}` : "—")}</td>
                <td>{s.verify}</td>
                <td>{s.secrets_set === 0 ? "none" : `${s.secrets_set} set (${s.secret_hints.join(", ")})`}</td>
                <td class="mono">{s.relay_prefix ?? "—"}</td>
                <td>{s.enabled ? "enabled" : "disabled"}</td>
                <td>
                  <form method="post" action={`/admin/inbound/${s.id}/${s.enabled ? "disable" : "enable"}`} class="inline">
                    <CsrfField ctx={ctx} />
                    <button type="submit" aria-label={`${s.enabled ? "Disable" : "Enable"} ${s.slug}`}>
                      {s.enabled ? "Disable" : "Enable"}
                    </button>
                  </form>{" "}
                  <form method="post" action={`/admin/inbound/${s.id}/delete`} class="inline">
                    <CsrfField ctx={ctx} />
                    <button type="submit" class="danger" aria-label={`Delete ${s.slug}`}>
                      Delete
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Layout>
  );
}

const blankToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const optionalText = z.preprocess(blankToUndefined, z.string().max(200).optional());

/** The filters as the URL carries them; a value that makes no sense is an error shown above the list. */
const filterQuery = z.object({
  source: optionalText,
  status: z.preprocess(blankToUndefined, z.enum(INBOUND_STATUSES).optional()),
  event: optionalText,
  tenant: optionalText,
  since: optionalText,
  until: optionalText,
  cursor: z.preprocess(blankToUndefined, z.string().regex(/^[1-9][0-9]{0,18}$/).optional()),
});
type FilterQuery = z.output<typeof filterQuery>;

function queryString(q: FilterQuery, extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...q, cursor: undefined, ...extra })) if (v !== undefined && v !== "") params.set(k, v);
  const s = params.toString();
  return s === "" ? "" : `?${s}`;
}

function at(text: string | undefined, name: string, problems: string[]): Date | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSince(text);
  } catch (e) {
    problems.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

function EventsPage(props: { ctx: PageContext; q: FilterQuery; problems: string[]; sources: SourceView[]; items: InboundEventView[]; next: string | null; replayed?: string }) {
  const { q, ctx } = props;
  return (
    <Layout ctx={ctx} title="Inbound events" section="inbound">
      <h1>Inbound events</h1>
      <form method="get" action="/admin/inbound/events" class="filters" role="search" aria-label="Filter inbound events">
        <div class="field">
          <label for="f-source">Source</label>
          <select id="f-source" name="source">
            <option value="">any</option>
            {props.sources.map((s) => (
              <option value={s.slug} selected={q.source === s.slug}>
                {s.slug}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-status">Status</label>
          <select id="f-status" name="status">
            <option value="">any</option>
            {INBOUND_STATUSES.map((s) => (
              <option value={s} selected={q.status === s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-event">Event name</label>
          <input id="f-event" name="event" type="text" value={q.event ?? ""} placeholder="invoice.*" />
        </div>
        {ctx.session?.tenant === null ? (
          <div class="field">
            <label for="f-tenant">Tenant</label>
            <input id="f-tenant" name="tenant" type="text" value={q.tenant ?? ""} />
          </div>
        ) : null}
        <div class="field">
          <label for="f-since">Since</label>
          <input id="f-since" name="since" type="text" value={q.since ?? ""} placeholder="24h or 2026-01-31T09:00:00Z" />
        </div>
        <div class="field">
          <label for="f-until">Until</label>
          <input id="f-until" name="until" type="text" value={q.until ?? ""} placeholder="1h or an ISO time" />
        </div>
        <button type="submit">Apply</button>
        <a href="/admin/inbound/events">Clear</a>
      </form>
      {props.problems.length > 0 ? (
        <div class="notice bad" role="alert">
          {props.problems.map((p) => (
            <p>{p}</p>
          ))}
        </div>
      ) : null}
      {props.replayed ? (
        <div class="notice" role="status">
          <p>{props.replayed}</p>
        </div>
      ) : null}
      <form method="post" action={`/admin/inbound/events/replay${queryString(q)}`} class="actions">
        <CsrfField ctx={ctx} />
        <button type="submit">Replay the matching {q.status ?? "failed"} events</button>
      </form>
      {props.items.length === 0 ? (
        <p>No inbound events match.</p>
      ) : (
        <table>
          <caption class="sr-only">Inbound events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Source</th>
              <th scope="col">Event</th>
              <th scope="col">Tenant</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Received</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {props.items.map((e) => (
              <tr>
                <td>
                  <a href={`/admin/inbound/events/${e.id}`}>{e.id}</a>
                </td>
                <td class="mono">{e.source_slug}</td>
                <td>{e.event_name ?? "—"}</td>
                <td>{e.tenant ?? "—"}</td>
                <td>
                  <StatusPill status={e.status} />
                </td>
                <td>{e.attempts}</td>
                <td>
                  <Time d={e.received_at} />
                </td>
                <td>{e.last_error ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {props.next ? (
        <p>
          <a href={`/admin/inbound/events${queryString(q, { cursor: props.next })}`}>Older events</a>
        </p>
      ) : null}
    </Layout>
  );
}

function EventPage({ ctx, e }: { ctx: PageContext; e: InboundEventDetail }) {
  return (
    <Layout ctx={ctx} title={`Inbound event ${e.id}`} section="inbound">
      <h1>Inbound event {e.id}</h1>
      <dl>
        <dt>Source</dt>
        <dd class="mono">{e.source_slug}</dd>
        <dt>Event</dt>
        <dd>{e.event_name ?? "—"}</dd>
        <dt>Tenant</dt>
        <dd>{e.tenant ?? "—"}</dd>
        <dt>Status</dt>
        <dd>
          <StatusPill status={e.status} /> after {e.attempts} attempt{e.attempts === 1 ? "" : "s"}
        </dd>
        <dt>Error</dt>
        <dd>{e.last_error ?? "—"}</dd>
        <dt>Received</dt>
        <dd>
          <Time d={e.received_at} />
        </dd>
        <dt>Processed</dt>
        <dd>
          <Time d={e.processed_at} />
        </dd>
        <dt>Sender's id</dt>
        <dd class="mono">{e.dedupe_key ?? "—"}</dd>
        <dt>Relayed as</dt>
        <dd class="mono">{e.relayed_event_id ?? "—"}</dd>
      </dl>
      <form method="post" action={`/admin/inbound/events/replay?ids=${e.id}`} class="actions">
        <CsrfField ctx={ctx} />
        <button type="submit" disabled={e.status === "processing"}>
          Replay this event
        </button>
      </form>
      <h2>Headers</h2>
      <pre>{Object.entries(e.headers).map(([k, v]) => `${k}: ${v}`).join("\n")}</pre>
      <h2>Body ({e.body_text === null ? "not UTF-8, base64" : "as received"})</h2>
      <pre>{e.body_text ?? e.body}</pre>
    </Layout>
  );
}

export function registerInboundPages(app: FastifyInstance, { conn }: ApiOptions): void {
  const sourcesOf = async (request: Parameters<typeof adminScope>[0]) => (await listSources(conn, adminScope(request), { limit: 1000 })).items;

  app.get("/inbound", async (request, reply) => sendHtml(reply, <SourcesPage ctx={pageContext(request)} sources={await sourcesOf(request)} />));

  app.post("/inbound", async (request, reply) => {
    const form = formOf(request);
    const scope = adminScope(request);
    const raw: Record<string, unknown> = { slug: field(form, "slug") ?? "", verify: field(form, "verify") ?? "" };
    const secret = field(form, "secret");
    if (secret !== undefined) raw.secrets = [secret];
    const name = field(form, "name");
    if (name !== undefined) raw.name = name;
    const tenant = field(form, "tenant");
    if (tenant !== undefined && scope.tenant === null) raw.tenant = tenant;
    const relay = field(form, "relay_prefix");
    if (relay !== undefined) raw.relay_prefix = relay;
    try {
      const created = await createSource(conn, scope, parseInput(sourceCreateSchema, raw));
      return sendHtml(reply, <SourcesPage ctx={pageContext(request)} sources={await sourcesOf(request)} created={created} />);
    } catch (e) {
      if (!(e instanceof DomainError) || (e.httpStatus !== 400 && e.httpStatus !== 409)) throw e;
      return sendHtml(reply, <SourcesPage ctx={pageContext(request)} sources={await sourcesOf(request)} errors={errorsByField(e)} />, e.httpStatus);
    }
  });

  for (const action of ["enable", "disable"] as const) {
    app.post<{ Params: { id: string } }>(`/inbound/:id/${action}`, async (request, reply) => {
      await updateSource(conn, adminScope(request), request.params.id, { enabled: action === "enable" });
      return seeOther(request, reply, "/admin/inbound");
    });
  }

  app.post<{ Params: { id: string } }>("/inbound/:id/delete", async (request, reply) => {
    const scope = adminScope(request);
    await getSource(conn, scope, request.params.id);
    await deleteSource(conn, scope, request.params.id);
    return seeOther(request, reply, "/admin/inbound");
  });

  const readFilters = (query: unknown) => {
    const parsed = filterQuery.safeParse(query);
    const problems: string[] = [];
    const q: FilterQuery = parsed.success ? parsed.data : {};
    if (!parsed.success) problems.push("Some filters were not understood and are ignored.");
    const since = at(q.since, "since", problems);
    const until = at(q.until, "until", problems);
    return { q, problems, filters: { source: q.source, status: q.status, event: q.event, tenant: q.tenant, since, until } };
  };

  const eventsPage = async (request: Parameters<typeof adminScope>[0], replayed?: string) => {
    const scope = adminScope(request);
    const { q, problems, filters } = readFilters(request.query);
    const page = await listInboundEvents(conn, scope, { ...filters, ...(scope.tenant !== null ? { tenant: undefined } : {}), limit: PAGE, cursor: q.cursor });
    return (
      <EventsPage
        ctx={pageContext(request)}
        q={q}
        problems={problems}
        sources={await sourcesOf(request)}
        items={page.items}
        next={page.next_cursor}
        {...(replayed === undefined ? {} : { replayed })}
      />
    );
  };

  app.get("/inbound/events", async (request, reply) => sendHtml(reply, await eventsPage(request)));

  app.post("/inbound/events/replay", async (request, reply) => {
    const scope = adminScope(request);
    const ids = (request.query as { ids?: unknown }).ids;
    const { filters } = readFilters(request.query);
    const r = await replayInboundEvents(conn, scope, typeof ids === "string" && /^[1-9][0-9]{0,18}$/.test(ids) ? { ids: [ids] } : filters);
    return sendHtml(reply, await eventsPage(request, replaySummary(r)));
  });

  app.get<{ Params: { id: string } }>("/inbound/events/:id", async (request, reply) => {
    const e = await getInboundEvent(conn, adminScope(request), request.params.id);
    return sendHtml(reply, <EventPage ctx={pageContext(request)} e={e} />);
  });
}
