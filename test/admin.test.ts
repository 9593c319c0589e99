// The admin UI at /admin over app.inject(): signing in and out, the session cookie, CSRF and
// Origin refusals, tenant scoping (another tenant's pages are 404), escaping, the CSP, secrets
// kept out of pages, and each page's main path against a real receiver.
import { startApi, insertFailedDelivery, rowCounts, type Api } from "./helpers/api";
import { formBody, setCookieOf, signIn, type AdminClient } from "./helpers/admin";
import { startReceiver, type Receiver } from "./helpers/receiver";
import { spawnCli } from "./helpers/cli";

let api: Api;
let receiver: Receiver;
let admin: AdminClient;

beforeAll(async () => {
  api = await startApi();
  receiver = await startReceiver({ status: 200, body: "thanks" });
  admin = await signIn(api, api.adminKey);
});
afterAll(async () => {
  await receiver.close();
  await api.close();
});
beforeEach(() => {
  receiver.respond({ status: 200, body: "thanks" });
  receiver.requests.length = 0;
});

const XSS = "<script>alert(1)</script>";

/** Creates a webhook through the form; its id. */
async function createViaForm(client: AdminClient, fields: Record<string, string | string[]> = {}): Promise<string> {
  const res = await client.post("/admin/webhooks/new", { url: `${receiver.url}/hook`, events_text: "*", is_active: "on", ...fields });
  expect(res.statusCode).toBe(303);
  const m = /^\/admin\/webhooks\/([0-9a-f-]{36})\?created=1$/.exec(String(res.headers.location));
  if (!m?.[1]) throw new Error(`unexpected location ${String(res.headers.location)}`);
  return m[1];
}

describe("signing in", () => {
  it("sends a visitor without a session to the sign-in page, remembering where they were going", async () => {
    const res = await api.app.inject({ method: "GET", url: "/admin/webhooks?show=paused" });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe(`/admin/signin?next=${encodeURIComponent("/admin/webhooks?show=paused")}`);
    const page = await api.app.inject({ method: "GET", url: String(res.headers.location) });
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/<label for="key">API key<\/label>/);
  });

  it("refuses an unknown key with a message next to the field, and sets no cookie", async () => {
    const res = await api.app.inject({
      method: "POST",
      url: "/admin/signin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: formBody({ key: "pgw_notakey" }),
    });
    expect(res.statusCode).toBe(401);
    expect(res.body).toContain("That key is unknown or revoked.");
    expect(res.body).toContain('aria-invalid="true"');
    expect(setCookieOf(res)).toEqual([]);
  });

  it("gives an HttpOnly, SameSite=Strict session cookie that expires and does not hold the key", async () => {
    const res = await api.app.inject({
      method: "POST",
      url: "/admin/signin",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      payload: formBody({ key: api.adminKey, next: "/admin/deliveries" }),
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe("/admin/deliveries");
    const [cookie] = setCookieOf(res);
    expect(cookie).toMatch(/^pgw_session=[^;]+; Path=\/admin; Max-Age=28800; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(api.adminKey);
  });

  it("never redirects outside the admin after signing in", async () => {
    for (const next of ["https://evil.example/", "//evil.example/admin", "/v1/webhooks", "/administrator"]) {
      const res = await api.app.inject({
        method: "POST",
        url: "/admin/signin",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        payload: formBody({ key: api.adminKey, next }),
      });
      expect(res.headers.location).toBe("/admin");
    }
  });

  it("refuses a forged, tampered or expired cookie", async () => {
    const [id, exp, sig] = admin.cookie.slice("pgw_session=".length).split(".");
    const forged = [
      `pgw_session=${id}.${Number(exp) + 1000}.${sig}`,
      `pgw_session=${id}.${exp}.${"A".repeat(43)}`,
      `pgw_session=${id}.1.${sig}`,
      "pgw_session=garbage",
    ];
    for (const cookie of forged) {
      const res = await api.app.inject({ method: "GET", url: "/admin/webhooks", headers: { cookie } });
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toMatch(/^\/admin\/signin/);
    }
  });

  it("signs out (clearing the cookie), and revoking the key ends its sessions at once", async () => {
    const key = await api.key(null);
    const client = await signIn(api, key);
    const out = await client.post("/admin/signout");
    expect(out.statusCode).toBe(303);
    expect(setCookieOf(out)[0]).toMatch(/^pgw_session=; Path=\/admin; Max-Age=0/);

    const other = await signIn(api, key);
    expect((await other.get("/admin/webhooks")).statusCode).toBe(200);
    await api.db.sql`update webhooks.api_keys set revoked_at = now() where key_prefix = ${key.slice(0, 12)}`;
    expect((await other.get("/admin/webhooks")).statusCode).toBe(303);
  });

  it("is not served at all with WEBHOOKS_ADMIN=off", async () => {
    const off = await startApi({ WEBHOOKS_ADMIN: "off" }, api.db);
    try {
      const res = await off.app.inject({ method: "GET", url: "/admin/signin" });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: "not_found" } });
    } finally {
      await off.app.close();
    }
  });
});

describe("pg-webhooks start", () => {
  it("serves the admin with the API, and not with --no-admin", async () => {
    for (const [args, expected] of [[[], 303], [["--no-admin"], 404]] as const) {
      const daemon = spawnCli(["start", "--no-migrate", "--no-dispatcher", ...args], {
        env: { DATABASE_URL: api.db.url, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn" },
      });
      try {
        await daemon.waitForOutput(/API on (http:\/\/127\.0\.0\.1:\d+)/);
        const url = /API on (http:\/\/127\.0\.0\.1:\d+)/.exec(daemon.output().stderr + daemon.output().stdout)?.[1];
        const res = await fetch(`${url}/admin`, { redirect: "manual" });
        expect({ args, status: res.status }).toEqual({ args, status: expected });
        expect(daemon.output().stderr.includes("admin UI at")).toBe(expected === 303);
      } finally {
        await daemon.stop();
      }
    }
  });
});

describe("security headers and assets", () => {
  it("serves every page with a strict CSP and no inline script or style", async () => {
    const res = await admin.get("/admin/webhooks");
    const csp = String(res.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe");
    expect(res.headers["x-frame-options"]).toBe("DENY");
    expect(res.headers["cache-control"]).toBe("no-store");
    for (const tag of res.body.match(/<script[^>]*>/g) ?? []) expect(tag).toMatch(/ src="\/admin\/assets\//);
    expect(res.body).not.toMatch(/<style|style="| on[a-z]+="|hx-on/);
    // htmx is told not to eval and not to inject its indicator <style>.
    expect(res.body).toContain("&quot;allowEval&quot;:false");
    expect(res.body).toContain("&quot;includeIndicatorStyles&quot;:false");
  });

  it("serves htmx and its own assets gzipped, cached for a year under a content hash", async () => {
    const page = await admin.get("/admin/webhooks");
    const srcs = [...page.body.matchAll(/(?:src|href)="(\/admin\/assets\/[^"]+)"/g)].map((m) => m[1] ?? "");
    expect(srcs).toHaveLength(3);
    for (const src of srcs) {
      const res = await api.app.inject({ method: "GET", url: src, headers: { "accept-encoding": "gzip, br" } });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-encoding"]).toBe("gzip");
      expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    }
    expect((await api.app.inject({ method: "GET", url: "/admin/assets/nope.js" })).statusCode).toBe(404);
  });

  it("keeps the admin routes out of the OpenAPI document", async () => {
    const doc = (await api.app.inject({ method: "GET", url: "/openapi.json" })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/admin"))).toEqual([]);
  });

  it("answers an unknown admin page with an HTML 404", async () => {
    const res = await admin.get("/admin/nothing-here");
    expect(res.statusCode).toBe(404);
    expect(res.headers["content-type"]).toMatch(/^text\/html/);
    expect(res.body).toContain("Not found");
  });
});

describe("CSRF", () => {
  it("refuses a form without the token, or with another session's, and changes nothing", async () => {
    const before = await rowCounts(api.db);
    const other = await signIn(api, await api.key(null));
    for (const csrf of [false, "x", other.csrf] as const) {
      const res = await admin.post("/admin/webhooks/new", { url: `${receiver.url}/hook`, events_text: "*" }, { csrf });
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain("security token");
    }
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("refuses a POST from another origin even with the token", async () => {
    const before = await rowCounts(api.db);
    const res = await admin.post("/admin/webhooks/new", { url: `${receiver.url}/hook`, events_text: "*" }, { headers: { origin: "https://evil.example" } });
    expect(res.statusCode).toBe(403);
    const site = await admin.post("/admin/webhooks/new", { url: `${receiver.url}/hook`, events_text: "*" }, { headers: { "sec-fetch-site": "cross-site" } });
    expect(site.statusCode).toBe(403);
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("accepts a POST from this host behind a proxy that ends TLS, and marks the cookie Secure there", async () => {
    const ok = await admin.post("/admin/webhooks/retry-preview", { retry_schedule: "5s" }, { headers: { origin: "https://localhost:80", host: "localhost:80" } });
    expect(ok.statusCode).toBe(200);
    const proxied = await admin.post("/admin/webhooks/retry-preview", { retry_schedule: "5s" }, {
      headers: { origin: "https://admin.example.com", "x-forwarded-host": "admin.example.com" },
    });
    expect(proxied.statusCode).toBe(200);
    const res = await api.app.inject({
      method: "POST",
      url: "/admin/signin",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-proto": "https" },
      payload: formBody({ key: api.adminKey }),
    });
    expect(setCookieOf(res)[0]).toMatch(/; Secure$/);
  });

  it("accepts the token in the x-csrf-token header, as htmx sends it", async () => {
    const id = await createViaForm(admin);
    const res = await admin.post(`/admin/webhooks/${id}/active`, { active: "false" }, { csrf: false, headers: { "x-csrf-token": admin.csrf, "hx-request": "true" } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^<tr id="webhook-/);
  });
});

describe("webhooks", () => {
  it("creates a webhook from the form, shows it escaped, and never puts its secrets in a page", async () => {
    const id = await createViaForm(admin, {
      name: XSS,
      auth_type: "bearer",
      auth_token: "tok-very-secret-1",
      headers: "X-Api-Key: hdr-very-secret-2\nX-Source: crm",
    });
    const { secret } = (await api.call("GET", `/v1/webhooks/${id}/secret`)).json() as { secret: string };
    for (const url of ["/admin/webhooks", `/admin/webhooks/${id}`, `/admin/webhooks/${id}/edit`]) {
      const res = await admin.get(url);
      expect(res.statusCode).toBe(200);
      expect(res.body).not.toContain(XSS);
      expect(res.body).toContain("&lt;script>alert(1)&lt;/script>");
      for (const s of ["tok-very-secret-1", "hdr-very-secret-2", secret]) expect(res.body).not.toContain(s);
    }
    // Revealed on purpose only.
    const reveal = await admin.post(`/admin/webhooks/${id}/secret`, {}, { headers: { "hx-request": "true" } });
    expect(reveal.body).toContain(secret);
  });

  it("shows the schema's errors next to their fields and writes nothing", async () => {
    const before = await rowCounts(api.db);
    const res = await admin.post("/admin/webhooks/new", {
      url: "ftp://nope",
      events_text: "bad pattern!",
      filter: "{not json",
      retry_schedule: "5x",
      timeout_ms: "5",
    });
    expect(res.statusCode).toBe(400);
    expect(res.body).toMatch(/id="filter-error">invalid JSON/);
    expect(res.body).toMatch(/id="retry_schedule-error">/);
    expect(await rowCounts(api.db)).toEqual(before);
    const schema = await admin.post("/admin/webhooks/new", { url: "ftp://nope", events_text: "*", timeout_ms: "5" });
    expect(schema.statusCode).toBe(400);
    expect(schema.body).toMatch(/id="url-error">expected an http:\/\/ or https:\/\/ URL/);
    expect(schema.body).toMatch(/id="timeout_ms-error">expected milliseconds from 100 to 300000/);
    expect(schema.body).toMatch(/id="url"[^>]*aria-invalid="true"/);
    // What was typed comes back.
    expect(schema.body).toContain('value="ftp://nope"');
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("edits a webhook, keeping secrets left blank", async () => {
    const id = await createViaForm(admin, { name: "before", auth_type: "bearer", auth_token: "keep-me" });
    const edit = await admin.get(`/admin/webhooks/${id}/edit`);
    const headersWas = /name="headers_was" value="([^"]*)"/.exec(edit.body)?.[1] ?? "";
    const res = await admin.post(`/admin/webhooks/${id}/edit`, {
      name: "after",
      url: `${receiver.url}/hook2`,
      events_text: "clients.*",
      auth_type: "bearer",
      headers_was: headersWas,
      retry_schedule: "30s,5m",
      retry_max_attempts: "3",
      timeout_ms: "5000",
      max_in_flight: "3",
    });
    expect(res.statusCode).toBe(303);
    const w = (await api.call("GET", `/v1/webhooks/${id}`)).json() as Record<string, unknown>;
    expect(w).toMatchObject({ name: "after", url: `${receiver.url}/hook2`, events: ["clients.*"], auth: { type: "bearer" }, timeout_ms: 5000, max_in_flight: 3 });
    expect(w.retry).toEqual({ strategy: "schedule", max_attempts: 3, delays_ms: [30000, 300000] });
    const [row] = await api.db.sql<{ auth: { token: string } }[]>`select auth from webhooks.subscriptions where id = ${id}`;
    expect(row?.auth.token).toBe("keep-me");
  });

  it("previews the real retry schedule", async () => {
    const res = await admin.post("/admin/webhooks/retry-preview", { retry_schedule: "30s,5m,1h", retry_max_attempts: "4" }, { headers: { "hx-request": "true" } });
    expect(res.body).toContain("4 attempts: now, then after 30s, 5m, 1h; gives up after about 1h 5m");
    const bad = await admin.post("/admin/webhooks/retry-preview", { retry_schedule: "soon" });
    expect(bad.body).toContain('class="error"');
  });

  it("toggles a webhook in place and shows why a disabled one stopped", async () => {
    const id = await createViaForm(admin, { name: "toggle me" });
    const off = await admin.post(`/admin/webhooks/${id}/active`, { active: "false", back: "/admin/webhooks" }, { headers: { "hx-request": "true" } });
    expect(off.body).toContain("paused");
    expect(off.body).toContain("disabled by a user");
    expect(off.body).toContain('aria-label="Enable toggle me"');
    await api.db.sql`update webhooks.subscriptions set disabled_reason = 'the endpoint answered 410 Gone' where id = ${id}`;
    const list = await admin.get("/admin/webhooks?show=paused");
    expect(list.body).toContain("the endpoint answered 410 Gone");
    const on = await admin.post(`/admin/webhooks/${id}/active`, { active: "true", back: "/admin/webhooks" });
    expect(on.statusCode).toBe(303);
    expect(on.headers.location).toBe("/admin/webhooks");
    expect(((await api.call("GET", `/v1/webhooks/${id}`)).json() as { is_active: boolean }).is_active).toBe(true);
  });

  it("filters the list by state and searches by name or URL", async () => {
    const a = await createViaForm(admin, { name: "findable-alpha" });
    await createViaForm(admin, { name: "other-beta" });
    const found = await admin.get("/admin/webhooks?q=ALPHA");
    expect(found.body).toContain(a);
    expect(found.body).not.toContain("other-beta");
    await api.db.sql`insert into webhooks.endpoint_health (subscription_id, circuit, consecutive_failures) values (${a}, 'open', 12)`;
    const failing = await admin.get("/admin/webhooks?show=failing");
    expect(failing.body).toContain("findable-alpha");
    expect(failing.body).toContain("open, 12 failures in a row");
    expect(failing.body).not.toContain("other-beta");
  });

  it("sends a test through the real signing path and shows the answer in place, headers masked", async () => {
    const id = await createViaForm(admin, { name: "tested" });
    receiver.respond({ status: 202, body: "got it" });
    const res = await admin.post(`/admin/webhooks/${id}/test`, { event_type: "webhook.test" }, { headers: { "hx-request": "true" } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^<div id="test-result"/);
    expect(res.body).toContain("status 202");
    expect(res.body).toContain("got it");
    expect(res.body).toMatch(/webhook-signature: v1,\*\*\*\*/);
    const [req] = await receiver.waitFor(1);
    expect(String(req?.headers["webhook-signature"])).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    const delivery = /href="\/admin\/deliveries\/([0-9a-f-]{36})"/.exec(res.body)?.[1];
    expect(delivery).toBeDefined();
    const page = await admin.get(`/admin/deliveries/${delivery}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("succeeded");
    // Without JavaScript the whole page comes back with the result in it.
    const full = await admin.post(`/admin/webhooks/${id}/test`, { event_type: "webhook.test" });
    expect(full.body).toMatch(/^<!doctype html>/);
    expect(full.body).toContain('id="test-result"');
  });

  it("rotates the secret, saying what receivers see meanwhile", async () => {
    const id = await createViaForm(admin);
    const res = await admin.post(`/admin/webhooks/${id}/rotate-secret`, { grace_ms: "3600000" });
    expect(res.statusCode).toBe(200);
    const { secret } = (await api.call("GET", `/v1/webhooks/${id}/secret`)).json() as { secret: string };
    expect(res.body).toContain(secret);
    expect(res.body).toContain("two signatures");
  });

  it("deletes a webhook only after the confirmation page", async () => {
    const id = await createViaForm(admin, { name: "doomed" });
    const confirm = await admin.get(`/admin/webhooks/${id}/delete`);
    expect(confirm.body).toContain("Delete doomed?");
    const res = await admin.post(`/admin/webhooks/${id}/delete`);
    expect(res.statusCode).toBe(303);
    expect((await admin.get(`/admin/webhooks/${id}`)).statusCode).toBe(404);
  });
});

describe("tenants", () => {
  it("shows a tenant key its own webhooks and deliveries only; other tenants' pages are 404", async () => {
    const acme = await signIn(api, await api.key("acme"));
    const globex = await signIn(api, await api.key("globex"));
    const id = await createViaForm(acme, { name: "acme-hook" });
    const delivery = await insertFailedDelivery(api.db, id, "clients.created", "acme");
    expect(((await api.call("GET", `/v1/webhooks/${id}`)).json() as { tenant: string }).tenant).toBe("acme");

    expect((await acme.get(`/admin/webhooks/${id}`)).statusCode).toBe(200);
    expect((await acme.get(`/admin/deliveries/${delivery}`)).statusCode).toBe(200);
    for (const url of [`/admin/webhooks/${id}`, `/admin/webhooks/${id}/edit`, `/admin/webhooks/${id}/delete`, `/admin/deliveries/${delivery}`]) {
      expect((await globex.get(url)).statusCode).toBe(404);
    }
    for (const url of [`/admin/webhooks/${id}/active`, `/admin/webhooks/${id}/secret`, `/admin/webhooks/${id}/test`, `/admin/webhooks/${id}/delete`, `/admin/deliveries/${delivery}/retry`]) {
      expect((await globex.post(url, { active: "false" })).statusCode).toBe(404);
    }
    expect((await globex.get("/admin/webhooks")).body).not.toContain("acme-hook");
    expect((await globex.get("/admin/deliveries")).body).not.toContain(delivery.slice(0, 8));
    expect(((await api.call("GET", `/v1/webhooks/${id}`)).json() as { is_active: boolean }).is_active).toBe(true);
    // The admin key sees every tenant's.
    expect((await admin.get("/admin/webhooks")).body).toContain("acme-hook");
    expect((await admin.get(`/admin/deliveries/${delivery}`)).statusCode).toBe(200);
  });
});

describe("deliveries", () => {
  it("lists deliveries with filters kept in the URL, webhook names beside them, rows that are links", async () => {
    const id = await createViaForm(admin, { name: "logged" });
    const failed = await insertFailedDelivery(api.db, id, "invoices.paid");
    const list = await admin.get(`/admin/deliveries?status=failed&webhook=${id}`);
    expect(list.statusCode).toBe(200);
    expect(list.body).toContain(`href="/admin/deliveries/${failed}"`);
    expect(list.body).toContain("logged");
    expect(list.body).toMatch(/<option value="failed" selected/);
    expect(list.body).toContain(`href="/admin/deliveries?status=failed&amp;webhook=${id}&amp;since=7d"`);
    const none = await admin.get(`/admin/deliveries?status=succeeded&webhook=${id}`);
    expect(none.body).toContain("No deliveries match.");
    const bad = await admin.get("/admin/deliveries?since=yesterdayish");
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain("since:");
    // An exact delivery id opens it.
    const exact = await admin.get(`/admin/deliveries?id=${failed}`);
    expect(exact.statusCode).toBe(303);
    expect(exact.headers.location).toBe(`/admin/deliveries/${failed}`);
  });

  it("retries a failed delivery from its page", async () => {
    const id = await createViaForm(admin, { name: "retry-me" });
    const failed = await insertFailedDelivery(api.db, id, "invoices.paid");
    const page = await admin.get(`/admin/deliveries/${failed}`);
    expect(page.body).toContain("Retry now");
    const res = await admin.post(`/admin/deliveries/${failed}/retry`);
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe(`/admin/deliveries/${failed}?retried=1`);
    const [row] = await api.db.sql<{ status: string }[]>`select status from webhooks.deliveries where id = ${failed}`;
    expect(row?.status).toBe("pending");
  });

  it("refreshes a live list by itself, as a fragment", async () => {
    const res = await admin.get("/admin/deliveries?live=1&status=failed", { "hx-request": "true" });
    expect(res.body).toMatch(/^<div id="delivery-list" data-live hx-get="\/admin\/deliveries\?status=failed&amp;live=1" hx-trigger="every 3s"/);
  });
});

describe("overview, keys, bulk replay, cancel", () => {
  it("shows failing and disabled webhooks first with the reason, counts of 24 h, and the database side to an admin", async () => {
    const id = await createViaForm(admin, { name: "gone-away" });
    await api.db.sql`update webhooks.subscriptions set is_active = false, disabled_reason = 'the endpoint answered 410 Gone' where id = ${id}`;
    await insertFailedDelivery(api.db, id, "clients.created");
    const res = await admin.get("/admin");
    expect(res.statusCode).toBe(200);
    const attention = res.body.slice(res.body.indexOf("Needs attention"), res.body.indexOf("Deliveries, last 24 hours"));
    expect(attention).toContain("gone-away");
    expect(attention).toContain("disabled: the endpoint answered 410 Gone");
    expect(res.body).toMatch(/\d+ failed<\/a>/);
    expect(res.body).toContain("Outbox lag");
    expect(res.body).toContain("Dispatchers alive");
    const tenant = await signIn(api, await api.key("initech"));
    const mine = await tenant.get("/admin");
    expect(mine.body).not.toContain("gone-away");
    expect(mine.body).not.toContain("Outbox lag");
  });

  it("lets only an admin key create (shown once), list and revoke keys", async () => {
    const created = await admin.post("/admin/keys", { name: "from the ui", tenant: "umbrella" });
    expect(created.statusCode).toBe(200);
    const key = /<pre id="new-key">(pgw_[^<]+)<\/pre>/.exec(created.body)?.[1];
    expect(key).toBeDefined();
    const list = await admin.get("/admin/keys");
    expect(list.body).toContain("from the ui");
    expect(list.body).not.toContain(String(key));
    const umbrella = await signIn(api, String(key));
    expect((await umbrella.get("/admin/keys")).statusCode).toBe(404);
    expect((await umbrella.post("/admin/keys", { name: "sneaky" })).statusCode).toBe(404);
    expect((await umbrella.get("/admin")).body).not.toContain('href="/admin/keys"');
    const [row] = await api.db.sql<{ id: string }[]>`select id from webhooks.api_keys where name = 'from the ui'`;
    expect(list.body).toContain(`action="/admin/keys/${row?.id}/revoke"`);
    const revoked = await admin.post(`/admin/keys/${row?.id}/revoke`);
    expect(revoked.statusCode).toBe(303);
    expect((await umbrella.get("/admin")).statusCode).toBe(303);
  });

  it("replays the deliveries of the current filter: the count first, then the run with its progress", async () => {
    const id = await createViaForm(admin, { name: "replayed" });
    const failed = [await insertFailedDelivery(api.db, id, "orders.created"), await insertFailedDelivery(api.db, id, "orders.created")];
    const list = await admin.get(`/admin/deliveries?status=failed&webhook=${id}`);
    expect(list.body).toContain(`href="/admin/replay?status=failed&amp;webhook=${id}"`);
    const confirm = await admin.get(`/admin/replay?status=failed&webhook=${id}`);
    expect(confirm.body).toContain("2 deliveries match");
    const before = await api.db.sql<{ status: string }[]>`select status from webhooks.deliveries where id = any(${failed}::uuid[])`;
    expect(before.map((r) => r.status)).toEqual(["failed", "failed"]);
    const run = await admin.post("/admin/replay", { status: "failed", webhook: id, rate: "100" });
    expect(run.statusCode).toBe(303);
    const progressUrl = String(run.headers.location);
    let page = "";
    for (let i = 0; i < 50 && !page.includes("done."); i++) {
      page = (await admin.get(progressUrl, { "hx-request": "true" })).body;
      if (!page.includes("done.")) await new Promise((r) => setTimeout(r, 100));
    }
    expect(page).toContain("2 of 2 handled, 2 queued — done.");
    const after = await api.db.sql<{ status: string }[]>`select status from webhooks.deliveries where id = any(${failed}::uuid[])`;
    expect(after.map((r) => r.status)).toEqual(["pending", "pending"]);
    // Another session does not see the run; a pending status cannot be replayed.
    const other = await signIn(api, await api.key(null));
    expect((await other.get(progressUrl)).statusCode).toBe(404);
    expect((await admin.get("/admin/replay?status=pending")).statusCode).toBe(400);
  });

  it("says a pending delivery is parked behind an open circuit, and until when", async () => {
    const id = await createViaForm(admin, { name: "parked" });
    const d = await insertFailedDelivery(api.db, id, "orders.created");
    await api.db.sql`update webhooks.deliveries set status = 'pending', parked_at = now() where id = ${d}`;
    await api.db.sql`insert into webhooks.endpoint_health (subscription_id, circuit, consecutive_failures, opened_at, next_probe_at)
                     values (${id}, 'open', 12, now(), '2099-01-01T14:05:00Z')`;
    const list = await admin.get(`/admin/deliveries?webhook=${id}`);
    expect(list.body).toContain("parked: circuit open after 12 failures, next probe at 2099-01-01 14:05:00 UTC");
  });

  it("cancels a pending delivery", async () => {
    const id = await createViaForm(admin, { name: "cancelling" });
    const d = await insertFailedDelivery(api.db, id, "orders.created");
    await api.db.sql`update webhooks.deliveries set status = 'retrying', attempts = 2, next_attempt_at = now() + interval '1 hour' where id = ${d}`;
    const list = await admin.get(`/admin/deliveries?webhook=${id}`);
    expect(list.body).toMatch(/retrying, attempt 3 of 8, next at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    expect((await admin.get(`/admin/deliveries/${d}`)).body).toContain("Cancel this delivery");
    const res = await admin.post(`/admin/deliveries/${d}/cancel`);
    expect(res.headers.location).toBe(`/admin/deliveries/${d}?cancelled=1`);
    const [row] = await api.db.sql<{ status: string }[]>`select status from webhooks.deliveries where id = ${d}`;
    expect(row?.status).toBe("cancelled");
  });
});

describe("theme", () => {
  it("remembers a dark or light choice in a cookie and renders it, and follows the system otherwise", async () => {
    const res = await admin.post("/admin/theme", { theme: "dark", back: "/admin/deliveries" }, { csrf: false });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe("/admin/deliveries");
    const theme = setCookieOf(res)[0]?.split(";")[0] ?? "";
    expect(theme).toBe("pgw_theme=dark");
    const page = await admin.get("/admin/webhooks", { cookie: `${admin.cookie}; ${theme}` });
    expect(page.body).toContain('<html lang="en" data-theme="dark">');
    expect((await admin.get("/admin/webhooks")).body).toContain('<html lang="en">');
  });
});

describe("payloads in the form", () => {
  it("picks a preset or a template, previews it without saving, and saves it", async () => {
    const before = await rowCounts(api.db);
    const slack = await admin.post(
      "/admin/webhooks/payload-preview",
      { payload_preset: "slack", events_text: "orders.paid" },
      { headers: { "hx-request": "true" } },
    );
    expect(slack.statusCode).toBe(200);
    expect(slack.body).toMatch(/^<output id="payload-preview"/);
    expect(slack.body).toContain("orders.paid");
    expect(slack.body).toContain("{&quot;text&quot;:");
    // Without JavaScript: the Preview button posts the form itself, which comes back with the preview and saves nothing.
    const template = '{"hello": type, "x": "<script>alert(1)</script>"}';
    const page = await admin.post("/admin/webhooks/new", {
      url: `${receiver.url}/hook`,
      events_text: "orders.paid",
      payload_preset: "template",
      payload_template: template,
      _action: "preview",
    });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain("{&quot;hello&quot;:&quot;orders.paid&quot;,&quot;x&quot;:&quot;&lt;script>alert(1)&lt;/script>&quot;}");
    expect(page.body).not.toContain("<script>alert(1)");
    expect(await rowCounts(api.db)).toEqual(before);

    const id = await createViaForm(admin, { events_text: "orders.paid", payload_preset: "template", payload_template: template });
    expect(((await api.call("GET", `/v1/webhooks/${id}`)).json() as { payload: unknown }).payload).toEqual({ template });
    const edit = await admin.get(`/admin/webhooks/${id}/edit`);
    expect(edit.body).toMatch(/<option value="template" selected/);
    expect(edit.body).toContain("&quot;hello&quot;:&quot;orders.paid&quot;");
    // Back to a preset.
    const res = await admin.post(`/admin/webhooks/${id}/edit`, {
      url: `${receiver.url}/hook`,
      events_text: "orders.paid",
      payload_preset: "classic",
      headers_was: "",
      auth_type: "none",
      retry_schedule: "5s",
      retry_max_attempts: "2",
      timeout_ms: "5000",
      max_in_flight: "5",
    });
    expect(res.statusCode).toBe(303);
    expect(((await api.call("GET", `/v1/webhooks/${id}`)).json() as { payload: unknown }).payload).toEqual({ preset: "classic" });
  });

  it("shows a template that does not compile next to its field, in the preview and on save, and writes nothing", async () => {
    const before = await rowCounts(api.db);
    const preview = await admin.post("/admin/webhooks/payload-preview", { payload_preset: "template", payload_template: '{"a": ', events_text: "*" });
    expect(preview.body).toMatch(/<span class="error">[^<]+/);
    const save = await admin.post("/admin/webhooks/new", { url: `${receiver.url}/hook`, events_text: "*", payload_preset: "template", payload_template: '{"a": ' });
    expect(save.statusCode).toBe(400);
    expect(save.body).toMatch(/id="payload_template-error">[^<]+/);
    const unknown = await admin.post("/admin/webhooks/new", { url: `${receiver.url}/hook`, events_text: "*", payload_preset: "fancy" });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.body).toMatch(/id="payload_preset-error">[^<]*preset/);
    expect(await rowCounts(api.db)).toEqual(before);
  });

  it("previews a tenant key's payload with its own tenant's events only", async () => {
    await api.db.sql`select webhooks.emit('memo.noted', '{"v": "globex-private-memo"}'::jsonb, 'globex')`;
    await api.db.sql`select webhooks.emit('memo.noted', '{"v": "acme-own-memo"}'::jsonb, 'acme')`;
    const acme = await signIn(api, await api.key("acme"));
    const res = await acme.post("/admin/webhooks/payload-preview", { payload_preset: "standard", events_text: "memo.noted", tenant: "globex" });
    expect(res.body).toContain("acme-own-memo");
    expect(res.body).not.toContain("globex-private-memo");
    const all = await admin.post("/admin/webhooks/payload-preview", { payload_preset: "standard", events_text: "memo.noted" });
    expect(all.body).toContain("globex-private-memo");
  });
});

describe("event catalog", () => {
  it("lists each type by table with its schema, an example body per preset, and the webhooks that receive it", async () => {
    await api.db.sql`create table if not exists catalog_items (id bigint primary key, title text not null)`;
    await api.db.sql`select webhooks.track_table('public.catalog_items')`;
    const id = await createViaForm(admin, { name: XSS, events_text: "catalog_items.*" });
    await createViaForm(admin, { name: "other-hook", events_text: "invoices.paid" });
    const res = await admin.get("/admin/events");
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('aria-current="page">Events</a>');
    for (const type of ["catalog_items.created", "catalog_items.updated", "catalog_items.deleted"]) {
      expect(res.body).toContain(`<h3 id="type-${type.replace(".", "_")}-h" class="mono">${type}</h3>`);
    }
    for (const preset of ["standard", "classic", "thin", "slack", "discord"]) expect(res.body).toContain(`Example body: ${preset}`);
    expect(res.body).toContain("&quot;title&quot;: {");
    const created = res.body.slice(res.body.indexOf('id="type-catalog_items_created"'), res.body.indexOf('id="type-catalog_items_updated"'));
    expect(created).toContain(`href="/admin/webhooks/${id}"`);
    expect(created).toContain("&lt;script>alert(1)&lt;/script>");
    expect(created).not.toContain("other-hook");
    expect(created).toContain(`href="/admin/deliveries?event=catalog_items.created"`);
  });

  it("shows a tenant key neither another tenant's custom types nor its webhooks", async () => {
    await api.db.sql`select webhooks.emit('secret.globex_only', '{}'::jsonb, 'globex')`;
    const globex = await signIn(api, await api.key("globex"));
    await createViaForm(globex, { name: "globex-catalog-hook", events_text: "*" });
    const acme = await signIn(api, await api.key("acme"));
    const page = await acme.get("/admin/events");
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain("secret.globex_only");
    expect(page.body).not.toContain("globex-catalog-hook");
    expect((await globex.get("/admin/events")).body).toContain("secret.globex_only");
  });
});
