// /admin/webhooks/:id: settings, health, recent deliveries; Test (through the real signing and
// sending path, recorded like any delivery); the secret revealed on request, rotated with what
// receivers see meanwhile; a verification snippet; delete after a confirmation page.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ApiOptions } from "../../api/app";
import type { AttemptView, DeliveryView } from "../../model/delivery";
import type { RotatedSecret } from "../../model/rotation";
import { describeRetryPolicy, retryPolicySchema } from "../../model/retry-policy";
import { verificationSnippet, type WebhookView } from "../../model/webhook";
import { getDelivery, listWebhookDeliveries } from "../../services/deliveries";
import { listEventTypes } from "../../services/event-types";
import { typeMatches } from "../../model/filter";
import { sendTest, TEST_EVENT_TYPE, type TestResult } from "../../services/test-send";
import { deleteWebhook, getWebhook, getWebhookSecret, rotateSecret } from "../../services/webhooks";
import { webhookRates, type WebhookRate } from "../../services/webhook-rates";
import { Circuit, DeliveriesTable, LastStatus, Rate, webhookLabel } from "../components";
import { field, formOf } from "../forms";
import { adminScope, isHtmx, pageContext, seeOther } from "../http";
import { CsrfField, Layout, sendHtml, Time, type PageContext } from "../layout";

type IdRequest = FastifyRequest<{ Params: { id: string } }>;

interface TestOutcome {
  result: TestResult;
  attempt: AttemptView | undefined;
}

interface Extras {
  test?: TestOutcome;
  secret?: string;
  rotated?: RotatedSecret;
  notice?: string;
}

const VERIFY: Record<Exclude<WebhookView["signature_scheme"], "ed25519">, string> = {
  standard: `// npm install standardwebhooks
import { Webhook } from "standardwebhooks";
const wh = new Webhook(process.env.WEBHOOK_SECRET); // whsec_…
// body: the raw request body as a string, exactly as received
const event = wh.verify(body, {
  "webhook-id": req.headers["webhook-id"],
  "webhook-timestamp": req.headers["webhook-timestamp"],
  "webhook-signature": req.headers["webhook-signature"],
}); // throws when the signature or timestamp is wrong`,
  hex: `import { createHmac, timingSafeEqual } from "node:crypto";
// body: the raw request body as a string, exactly as received
const expected = createHmac("sha256", process.env.WEBHOOK_SECRET).update(body).digest("hex");
const got = String(req.headers["x-webhook-signature"] ?? "");
const ok = got.length === expected.length && timingSafeEqual(Buffer.from(got), Buffer.from(expected));`,
  sha256: `import { createHmac, timingSafeEqual } from "node:crypto";
// body: the raw request body as a string, exactly as received
const expected = "sha256=" + createHmac("sha256", process.env.WEBHOOK_SECRET).update(body).digest("hex");
const got = String(req.headers[HEADER] ?? ""); // the webhook's signature header, lower case
const ok = got.length === expected.length && timingSafeEqual(Buffer.from(got), Buffer.from(expected));`,
};

export function TestResultView({ outcome }: { outcome: TestOutcome }) {
  const { result: r, attempt } = outcome;
  return (
    <div id="test-result" class={`notice ${r.ok ? "" : "bad"}`} role="status" aria-live="polite">
      <p>
        <strong class={r.ok ? "ok" : "bad"}>{r.ok ? "Delivered" : "Failed"}</strong>: status {r.status_code ?? "none"}, {r.duration_ms} ms.{" "}
        <a href={`/admin/deliveries/${r.delivery_id}`}>The recorded delivery</a>
      </p>
      {r.error ? <p class="bad">{r.error}</p> : null}
      {attempt ? (
        <>
          <h3>Request headers (secrets masked)</h3>
          <pre>{Object.entries(attempt.request_headers).map(([k, v]) => `${k}: ${v}\n`)}</pre>
        </>
      ) : null}
      <h3>Response excerpt</h3>
      <pre>{r.response_excerpt ?? "(no response body)"}</pre>
    </div>
  );
}

function SecretView({ secret, rotated }: { secret?: string | undefined; rotated?: RotatedSecret | undefined }) {
  const value = rotated?.secret ?? secret;
  if (value === undefined) return <div id="secret-value"></div>;
  return (
    <div id="secret-value" class="notice" role="status" aria-live="polite">
      <p>{rotated ? "The new signing secret:" : "The signing secret:"}</p>
      <pre id="secret-text">{value}</pre>
      {rotated?.public_key ? (
        <p>
          The new public key, for receivers: <code>{rotated.public_key}</code>
        </p>
      ) : null}
      <button type="button" data-copy="secret-text" hidden>
        Copy the secret
      </button>
      {rotated ? <p>{rotated.receivers_see}</p> : null}
    </div>
  );
}

function Settings({ w }: { w: WebhookView }) {
  const policy = retryPolicySchema.safeParse(w.retry);
  return (
    <dl class="props">
      <dt>URL</dt>
      <dd class="mono">
        {w.method} {w.url}
      </dd>
      {w.description ? (
        <>
          <dt>Description</dt>
          <dd>{w.description}</dd>
        </>
      ) : null}
      {w.tenant !== null ? (
        <>
          <dt>Tenant</dt>
          <dd>{w.tenant}</dd>
        </>
      ) : null}
      <dt>Events</dt>
      <dd>{w.events.join(", ")}</dd>
      <dt>Filter</dt>
      <dd>{w.filter === null ? "none" : <code>{JSON.stringify(w.filter)}</code>}</dd>
      <dt>Auth</dt>
      <dd>
        {w.auth.type}
        {w.auth.type === "basic" ? ` (user ${w.auth.username})` : w.auth.type === "header" ? ` (${w.auth.name})` : ""}
      </dd>
      <dt>Headers</dt>
      <dd class="mono">{Object.keys(w.headers).length === 0 ? "none" : Object.entries(w.headers).map(([k, v]) => `${k}: ${v}`).join("; ")}</dd>
      <dt>Signature</dt>
      <dd>
        {w.signature_scheme}
        {w.signature_header ? ` in ${w.signature_header}` : ""}
      </dd>
      {w.public_key !== null ? (
        <>
          <dt>Public key</dt>
          <dd class="mono" id="public-key">
            {w.public_key}
          </dd>
        </>
      ) : null}
      {w.previous_public_key !== null ? (
        <>
          <dt>Old public key (still signing)</dt>
          <dd class="mono">{w.previous_public_key}</dd>
        </>
      ) : null}
      <dt>Payload</dt>
      <dd>
        {"template" in w.payload ? (
          <>
            JSONata template <pre>{w.payload.template}</pre>
          </>
        ) : (
          `${w.payload.preset} preset`
        )}
        {w.big_numbers === "number" ? "; numbers beyond 2^53 as JSON numbers" : ""}
        {w.iso_timestamp_header ? "; X-Webhook-Timestamp sent" : ""}
      </dd>
      <dt>Retries</dt>
      <dd>{policy.success ? describeRetryPolicy(policy.data) : JSON.stringify(w.retry)}</dd>
      <dt>Timeout</dt>
      <dd>{w.timeout_ms} ms</dd>
      <dt>In flight at most</dt>
      <dd>{w.max_in_flight}</dd>
      <dt>Rate limit</dt>
      <dd>{w.rate_limit_per_s === null ? "none" : `${w.rate_limit_per_s} per second`}</dd>
      <dt>Created</dt>
      <dd>
        <Time d={w.created_at} />
      </dd>
    </dl>
  );
}

function WebhookPage(props: {
  ctx: PageContext;
  w: WebhookView;
  rate: WebhookRate | undefined;
  deliveries: DeliveryView[];
  eventTypes: string[];
  extras: Extras;
}) {
  const { ctx, w, extras } = props;
  const label = webhookLabel(w);
  const base = `/admin/webhooks/${w.id}`;
  return (
    <Layout ctx={ctx} title={label} section="webhooks">
      <h1>{label}</h1>
      {extras.notice ? (
        <p class="notice" role="status">
          {extras.notice}
        </p>
      ) : null}
      <div class="actions">
        <a class="button" href={`${base}/edit`}>
          Edit
        </a>
        <form method="post" action={`${base}/active`} class="inline">
          <CsrfField ctx={ctx} />
          <input type="hidden" name="active" value={w.is_active ? "false" : "true"} />
          <input type="hidden" name="back" value={base} />
          <button type="submit">{w.is_active ? "Pause" : "Enable"}</button>
        </form>
        <a class="button" href={`/admin/deliveries?webhook=${w.id}`}>
          All its deliveries
        </a>
        <a class="button danger" href={`${base}/delete`}>
          Delete…
        </a>
      </div>

      <h2>Health</h2>
      <dl class="props">
        <dt>Active</dt>
        <dd>{w.is_active ? <span class="ok">yes</span> : <span class="warn">no{w.disabled_reason ? `: ${w.disabled_reason}` : ""}</span>}</dd>
        {!w.is_active && w.disabled_at ? (
          <>
            <dt>Disabled at</dt>
            <dd>
              <Time d={w.disabled_at} />
            </dd>
          </>
        ) : null}
        <dt>Circuit</dt>
        <dd>
          <Circuit w={w} />
        </dd>
        <dt>Failing since</dt>
        <dd>
          <Time d={w.health.failing_since} />
        </dd>
        <dt>Last success</dt>
        <dd>
          <Time d={w.health.last_success_at} />
        </dd>
        <dt>Success, 24 h</dt>
        <dd>
          <Rate rate={props.rate} />
        </dd>
        <dt>Last answer</dt>
        <dd>
          <LastStatus rate={props.rate} />
        </dd>
      </dl>

      <h2 id="test-heading">Test</h2>
      <form method="post" action={`${base}/test`} hx-post={`${base}/test`} hx-target="#test-result" hx-swap="outerHTML" aria-labelledby="test-heading">
        <CsrfField ctx={ctx} />
        <div class="field">
          <label for="event_type">Event type</label>
          <select id="event_type" name="event_type">
            {props.eventTypes.map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
          <span class="hint">Sent now through the real signing path and recorded as a delivery (never retried).</span>
        </div>
        <button type="submit" class="primary">
          Send test
        </button>{" "}
        <span class="htmx-indicator muted">sending…</span>
      </form>
      {extras.test ? <TestResultView outcome={extras.test} /> : <div id="test-result"></div>}

      <h2>Settings</h2>
      <Settings w={w} />

      <h2>Signing secret</h2>
      {w.secret_rotation ? <p class="notice">Rotation in progress: {w.secret_rotation}</p> : null}
      <div class="actions">
        <form method="post" action={`${base}/secret`} hx-post={`${base}/secret`} hx-target="#secret-value" hx-swap="outerHTML" class="inline">
          <CsrfField ctx={ctx} />
          <button type="submit">Reveal the secret</button>
        </form>
        <form method="post" action={`${base}/rotate-secret`} class="inline">
          <CsrfField ctx={ctx} />
          <label for="grace">Old secret keeps signing for</label>{" "}
          <select id="grace" name="grace_ms">
            <option value="86400000">24 hours</option>
            <option value="3600000">1 hour</option>
            <option value="604800000">7 days</option>
            <option value="0">no time: switch now</option>
          </select>{" "}
          <button type="submit">Rotate the secret</button>
        </form>
      </div>
      <p class="hint">
        {w.signature_scheme === "ed25519"
          ? "Receivers verify with the public key; the private signing key never leaves pg-webhooks. During a rotation every request carries two v1a signatures (new and old key), so receivers holding either public key verify."
          : w.signature_scheme === "standard"
          ? "During a rotation every request carries two signatures (new and old secret), so receivers holding either verify."
          : `${w.signature_scheme} carries one signature: the old secret signs alone until the switch, then the new one alone.`}
      </p>
      <SecretView secret={extras.secret} rotated={extras.rotated} />
      <details>
        <summary>Verifying the signature in the receiver</summary>
        <pre>{w.signature_scheme === "ed25519" ? verificationSnippet(w.public_key ?? "whpk_…") : VERIFY[w.signature_scheme]}</pre>
      </details>

      <h2>Recent deliveries</h2>
      {props.deliveries.length === 0 ? (
        <p>None yet.</p>
      ) : (
        <DeliveriesTable items={props.deliveries} caption="Recent deliveries" />
      )}
    </Layout>
  );
}

function DeletePage({ ctx, w }: { ctx: PageContext; w: WebhookView }) {
  const label = webhookLabel(w);
  return (
    <Layout ctx={ctx} title={`Delete ${label}`} section="webhooks">
      <h1>Delete {label}?</h1>
      <p>
        It stops receiving events at once; deliveries still owed to it are cancelled. Its delivery history stays until pruned. This cannot be
        undone.
      </p>
      <form method="post" action={`/admin/webhooks/${w.id}/delete`}>
        <CsrfField ctx={ctx} />
        <button type="submit" class="danger">
          Delete {label}
        </button>{" "}
        <a href={`/admin/webhooks/${w.id}`}>Keep it</a>
      </form>
    </Layout>
  );
}

export function registerWebhookPage(app: FastifyInstance, opts: ApiOptions): void {
  const { conn } = opts;

  async function page(request: IdRequest, reply: FastifyReply, extras: Extras): Promise<FastifyReply> {
    const scope = adminScope(request);
    const w = await getWebhook(conn, scope, request.params.id);
    const [rates, deliveries, types] = await Promise.all([
      webhookRates(conn, scope, [w.id]),
      listWebhookDeliveries(conn, scope, w.id, { limit: 10 }),
      listEventTypes(conn, scope),
    ]);
    // The types this webhook receives first (what a test should look like), then the rest of the catalog.
    const known = types.map((t) => t.type).filter((t) => t !== TEST_EVENT_TYPE);
    const eventTypes = [TEST_EVENT_TYPE, ...known.filter((t) => typeMatches(w.events, t)), ...known.filter((t) => !typeMatches(w.events, t))];
    const q = request.query as { created?: string; saved?: string } | undefined;
    const notice = extras.notice ?? (q?.created ? "Webhook created." : q?.saved ? "Changes saved." : undefined);
    return sendHtml(
      reply,
      <WebhookPage ctx={pageContext(request)} w={w} rate={rates.get(w.id)} deliveries={deliveries.items} eventTypes={eventTypes} extras={{ ...extras, notice }} />,
    );
  }

  app.get<{ Params: { id: string } }>("/webhooks/:id", async (request, reply) => page(request, reply, {}));

  app.post<{ Params: { id: string } }>("/webhooks/:id/test", async (request, reply) => {
    const scope = adminScope(request);
    const eventType = field(formOf(request), "event_type");
    const result = await sendTest(opts.ctx, scope, request.params.id, eventType === undefined ? {} : { event_type: eventType });
    const delivery = await getDelivery(conn, scope, result.delivery_id);
    const outcome = { result, attempt: delivery.attempts[delivery.attempts.length - 1] };
    if (isHtmx(request)) return sendHtml(reply, <TestResultView outcome={outcome} />, 200, true);
    return page(request, reply, { test: outcome });
  });

  app.post<{ Params: { id: string } }>("/webhooks/:id/secret", async (request, reply) => {
    const secret = await getWebhookSecret(conn, adminScope(request), request.params.id);
    if (isHtmx(request)) return sendHtml(reply, <SecretView secret={secret} />, 200, true);
    return page(request, reply, { secret });
  });

  app.post<{ Params: { id: string } }>("/webhooks/:id/rotate-secret", async (request, reply) => {
    const grace = Number(field(formOf(request), "grace_ms") ?? "86400000");
    const rotated = await rotateSecret(conn, adminScope(request), request.params.id, { grace_ms: grace });
    return page(request, reply, { rotated, notice: "Secret rotated." });
  });

  app.get<{ Params: { id: string } }>("/webhooks/:id/delete", async (request, reply) => {
    const w = await getWebhook(conn, adminScope(request), request.params.id);
    return sendHtml(reply, <DeletePage ctx={pageContext(request)} w={w} />);
  });

  app.post<{ Params: { id: string } }>("/webhooks/:id/delete", async (request, reply) => {
    await deleteWebhook(conn, adminScope(request), request.params.id);
    return seeOther(request, reply, "/admin/webhooks");
  });
}
