// /admin/keys (admin key only; a tenant key gets 404): create a key (shown once), list them with
// when each was last used, revoke one (its sessions end at once).
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ApiOptions } from "../../api/app";
import { DomainError } from "../../errors";
import { createKey, listKeys, revokeKey, type ApiKeyView, type CreatedKey } from "../../services/keys";
import { errorsByField, field, formOf } from "../forms";
import { adminScope, pageContext, seeOther } from "../http";
import { CsrfField, FieldError, Layout, sendHtml, Time, type PageContext } from "../layout";

function requireAdminKey(request: FastifyRequest): void {
  if (adminScope(request).tenant !== null) throw new DomainError("not_found", "no such page");
}

function KeysPage({ ctx, keys, created, errors }: { ctx: PageContext; keys: ApiKeyView[]; created?: CreatedKey; errors?: Map<string, string> }) {
  return (
    <Layout ctx={ctx} title="API keys" section="keys">
      <h1>API keys</h1>
      {created ? (
        <div class="notice" role="status">
          <p>
            The new key{created.tenant ? ` for tenant ${created.tenant}` : " (admin)"}. It is shown this once: store it now.
          </p>
          <pre id="new-key">{created.key}</pre>
          <button type="button" data-copy="new-key" hidden>
            Copy the key
          </button>
        </div>
      ) : null}
      <h2>New key</h2>
      <form method="post" action="/admin/keys" class="filters">
        <CsrfField ctx={ctx} />
        <div class="field">
          <label for="key-name">Name</label>
          <input id="key-name" name="name" type="text" aria-invalid={errors?.has("name") ? "true" : undefined} />
          <FieldError id="key-name-error" message={errors?.get("name")} />
        </div>
        <div class="field">
          <label for="key-tenant">Tenant</label>
          <input id="key-tenant" name="tenant" type="text" aria-describedby="key-tenant-hint" aria-invalid={errors?.has("tenant") ? "true" : undefined} />
          <span class="hint" id="key-tenant-hint">
            Blank: an admin key (every tenant).
          </span>
          <FieldError id="key-tenant-error" message={errors?.get("tenant")} />
        </div>
        <button type="submit" class="primary">
          Create key
        </button>
      </form>
      <h2>Keys</h2>
      <table>
        <caption class="sr-only">API keys</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Tenant</th>
            <th scope="col">Starts with</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr>
              <td>{k.name ?? "—"}</td>
              <td>{k.tenant ?? "admin"}</td>
              <td class="mono">{k.key_prefix}…</td>
              <td>
                <Time d={k.created_at} />
              </td>
              <td>
                <Time d={k.last_used_at} />
              </td>
              <td>
                {k.revoked_at ? (
                  <span class="muted">
                    revoked <Time d={k.revoked_at} />
                  </span>
                ) : (
                  <form method="post" action={`/admin/keys/${k.id}/revoke`} class="inline">
                    <CsrfField ctx={ctx} />
                    <button type="submit" class="danger" aria-label={`Revoke ${k.name ?? k.key_prefix}`}>
                      Revoke
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  );
}

export function registerKeyPages(app: FastifyInstance, { conn }: ApiOptions): void {
  app.get("/keys", async (request, reply) => {
    requireAdminKey(request);
    return sendHtml(reply, <KeysPage ctx={pageContext(request)} keys={await listKeys(conn)} />);
  });

  app.post("/keys", async (request, reply) => {
    requireAdminKey(request);
    const form = formOf(request);
    try {
      const created = await createKey(conn, { name: field(form, "name") ?? null, tenant: field(form, "tenant") ?? null });
      return sendHtml(reply, <KeysPage ctx={pageContext(request)} keys={await listKeys(conn)} created={created} />);
    } catch (e) {
      if (!(e instanceof DomainError) || e.httpStatus !== 400) throw e;
      return sendHtml(reply, <KeysPage ctx={pageContext(request)} keys={await listKeys(conn)} errors={errorsByField(e)} />, 400);
    }
  });

  app.post<{ Params: { id: string } }>("/keys/:id/revoke", async (request, reply) => {
    requireAdminKey(request);
    await revokeKey(conn, request.params.id);
    return seeOther(request, reply, "/admin/keys");
  });
}
