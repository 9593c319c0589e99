// Signing in with an API key (it becomes a session cookie; the key itself is not kept), signing
// out, and the colour theme switch.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ApiOptions } from "../../api/app";
import { sessionKeyFor } from "../../services/keys";
import { field, formOf } from "../forms";
import { FieldError, Layout, sendHtml, type PageContext } from "../layout";
import { pageContext, seeOther } from "../http";
import { endSession, readSession, setTheme, SESSION_TTL_S, startSession } from "../session";

/** Only a path inside the admin: `next` must not send anyone elsewhere. */
export function safeNext(next: string | undefined): string {
  if (next === undefined || !/^\/admin(?:[/?#]|$)/.test(next) || next.length > 2000) return "/admin";
  return next;
}

function SignInPage({ ctx, next, error }: { ctx: PageContext; next: string; error?: string | undefined }) {
  return (
    <Layout ctx={ctx} title="Sign in" section="signin">
      <h1>Sign in</h1>
      <p>
        Paste an API key. Create one with <code>pg-webhooks keys create</code> (an admin key) or{" "}
        <code>pg-webhooks keys create --tenant acme</code> (a key that sees one tenant only).
      </p>
      <form method="post" action="/admin/signin">
        <input type="hidden" name="next" value={next} />
        <div class="field">
          <label for="key">API key</label>
          <input
            id="key"
            name="key"
            type="password"
            autocomplete="off"
            spellcheck={false}
            required
            aria-invalid={error ? "true" : undefined}
            aria-describedby={error ? "key-error" : "key-hint"}
          />
          <span class="hint" id="key-hint">
            Starts with pgw_. The key is not stored in the browser: you get a session that lasts {SESSION_TTL_S / 3600} hours.
          </span>
          <FieldError id="key-error" message={error} />
        </div>
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </Layout>
  );
}

const nextOf = (request: FastifyRequest) => safeNext((request.query as { next?: string } | undefined)?.next);

export function registerAuthPages(app: FastifyInstance, { conn }: ApiOptions): void {
  app.get("/signin", { config: { adminPublic: true } }, async (request, reply) => {
    if ((await readSession(conn, request)) !== null) return reply.code(303).header("location", nextOf(request)).send("");
    return sendHtml(reply, <SignInPage ctx={pageContext(request)} next={nextOf(request)} />);
  });

  app.post("/signin", { config: { adminPublic: true } }, async (request, reply) => {
    const form = formOf(request);
    const next = safeNext(field(form, "next"));
    const token = field(form, "key");
    const key = token === undefined ? null : await sessionKeyFor(conn, token);
    if (key === null) {
      const error = token === undefined ? "Enter an API key." : "That key is unknown or revoked.";
      return sendHtml(reply, <SignInPage ctx={pageContext(request)} next={next} error={error} />, 401);
    }
    startSession(request, reply, key);
    return seeOther(request, reply, next);
  });

  app.post("/signout", async (request, reply) => {
    endSession(request, reply);
    return seeOther(request, reply, "/admin/signin");
  });

  app.post("/theme", { config: { adminPublic: true } }, async (request, reply) => {
    const form = formOf(request);
    const theme = field(form, "theme");
    setTheme(request, reply, theme === "light" || theme === "dark" ? theme : "system");
    return seeOther(request, reply, safeNext(field(form, "back")));
  });
}
