// The admin's inbound pages over app.inject(): creating a source (a generated secret shown once,
// never again), escaping, CSRF, tenant 404s, the events list with its filters in the URL, one
// event's page and replay.
import { startApi, type Api } from "./helpers/api";
import { signIn, type AdminClient } from "./helpers/admin";

let api: Api;
let admin: AdminClient;

beforeAll(async () => {
  api = await startApi();
  admin = await signIn(api, api.adminKey);
});
afterAll(async () => {
  await api.close();
});

const XSS = "<script>alert(1)</script>";

describe("/admin/inbound", () => {
  it("creates a source with a generated secret shown once, escapes names and never shows a given secret", async () => {
    const created = await admin.post("/admin/inbound", { slug: "crm", verify: "api_key", name: XSS });
    expect(created.statusCode).toBe(200);
    const secret = /<pre id="new-secret">([^<]+)<\/pre>/.exec(created.body)?.[1];
    expect(secret).toMatch(/^pgwin_/);
    expect(created.body).not.toContain(XSS);
    expect(created.body).toContain("&lt;script>alert(1)&lt;/script>");
    const page = await admin.get("/admin/inbound");
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain(secret ?? "none");
    expect(page.body).toContain("/in/crm");

    const given = "given-secret-0123456789-abcdef";
    await admin.post("/admin/inbound", { slug: "billing", verify: "stripe", secret: given });
    expect((await admin.get("/admin/inbound")).body).not.toContain(given);
    expect((await admin.get("/admin/inbound")).body).toContain(`…${given.slice(-4)}`);
  });

  it("shows a bad field next to it with 400 and writes nothing; refuses a POST without the CSRF token", async () => {
    const [before] = await api.db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_sources`;
    const bad = await admin.post("/admin/inbound", { slug: "Bad Slug", verify: "none" });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toMatch(/id="src-slug-error"/);
    // hmac options have no field here: the error is shown above the form, with its path.
    const hmac = await admin.post("/admin/inbound", { slug: "uihmac", verify: "hmac" });
    expect(hmac.statusCode).toBe(400);
    expect(hmac.body).toMatch(/<div class="notice bad" role="alert"><p>hmac[^<]*: [^<]+<\/p>/);
    const noCsrf = await admin.post("/admin/inbound", { slug: "ok", verify: "none" }, { csrf: false });
    expect(noCsrf.statusCode).toBe(403);
    const [after] = await api.db.sql<{ n: number }[]>`select count(*)::int as n from webhooks.inbound_sources`;
    expect(after?.n).toBe(before?.n);
  });

  it("gives a tenant 404 for another tenant's source and event, and lists only its own", async () => {
    const [src] = await api.db.sql<{ id: string }[]>`select id from webhooks.inbound_sources where slug = 'crm'`;
    const [ev] = await api.db.sql<{ id: string }[]>`
      insert into webhooks.inbound_events (source_id, event_name, headers, body, status)
      values (${src?.id ?? ""}, 'contact.created', '{"x-tenant-id": "acme"}', ${Buffer.from('{"name":"<b>x</b>"}')}, 'failed') returning id::text`;
    const tenant = await signIn(api, await api.key("globex"));
    expect((await tenant.post(`/admin/inbound/${src?.id ?? ""}/disable`)).statusCode).toBe(404);
    expect((await tenant.get(`/admin/inbound/events/${ev?.id ?? ""}`)).statusCode).toBe(404);
    expect((await tenant.get("/admin/inbound")).body).not.toContain("/in/crm");
    expect((await tenant.get("/admin/inbound/events")).body).not.toContain("contact.created");
  });

  it("lists events with the filters kept in the URL, shows one escaped, and replays", async () => {
    const list = await admin.get("/admin/inbound/events?source=crm&status=failed&event=contact.*&since=24h");
    expect(list.statusCode).toBe(200);
    expect(list.body).toContain("contact.created");
    expect(list.body).toMatch(/<option value="failed" selected/);
    const none = await admin.get("/admin/inbound/events?source=billing");
    expect(none.body).toContain("No inbound events match.");
    const bad = await admin.get("/admin/inbound/events?since=yesterday");
    expect(bad.statusCode).toBe(200);
    expect(bad.body).toContain("since:");
    const id = /href="\/admin\/inbound\/events\/(\d+)"/.exec(list.body)?.[1] ?? "";
    const one = await admin.get(`/admin/inbound/events/${id}`);
    expect(one.statusCode).toBe(200);
    expect(one.body).toContain("&lt;b>x&lt;/b>");
    expect(one.body).not.toContain("<b>x</b>");
    const replay = await admin.post(`/admin/inbound/events/replay?ids=${id}`);
    expect(replay.statusCode).toBe(200);
    expect(replay.body).toContain("1 back to pending");
    const [row] = await api.db.sql<{ status: string }[]>`select status from webhooks.inbound_events where id = ${id}`;
    expect(row?.status).toBe("pending");
  });
});
