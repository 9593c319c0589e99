// The page frame every admin page shares: head (assets, htmx configured for the strict CSP),
// navigation, who is signed in, sign out, the theme switch; and the small pieces pages reuse.
import type { ComponentChildren, VNode } from "preact";
import { renderToString } from "preact-render-to-string";
import type { FastifyReply } from "fastify";
import { assets } from "./assets";
import type { AdminSession, Theme } from "./session";

/** No eval (hx-on, js: filters), no injected <style>, no <script> in swapped content, same origin only. */
const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
});

export type Section = "overview" | "webhooks" | "deliveries" | "events" | "inbound" | "keys" | "signin" | "none";

export interface PageContext {
  session: AdminSession | null;
  theme: Theme;
  /** The path (and query) of this page, for forms that come back to it. */
  path: string;
}

function Nav({ ctx, section }: { ctx: PageContext; section: Section }) {
  const link = (href: string, label: string, s: Section) => (
    <li>
      <a href={href} aria-current={section === s ? "page" : undefined}>
        {label}
      </a>
    </li>
  );
  return (
    <nav aria-label="Main">
      <ul>
        {link("/admin", "Overview", "overview")}
        {link("/admin/webhooks", "Webhooks", "webhooks")}
        {link("/admin/deliveries", "Deliveries", "deliveries")}
        {link("/admin/events", "Events", "events")}
        {link("/admin/inbound", "Inbound", "inbound")}
        {ctx.session?.tenant === null ? link("/admin/keys", "Keys", "keys") : null}
      </ul>
    </nav>
  );
}

export function CsrfField({ ctx }: { ctx: PageContext }) {
  return ctx.session ? <input type="hidden" name="_csrf" value={ctx.session.csrf} /> : null;
}

function ThemeSwitch({ ctx }: { ctx: PageContext }) {
  const choice = (value: Theme, label: string) => (
    <button type="submit" name="theme" value={value} aria-pressed={ctx.theme === value ? "true" : "false"}>
      {label}
    </button>
  );
  return (
    <form method="post" action="/admin/theme" class="inline" aria-label="Colour theme">
      <CsrfField ctx={ctx} />
      <input type="hidden" name="back" value={ctx.path} />
      <span class="muted" id="theme-label">
        Theme:
      </span>{" "}
      <span role="group" aria-labelledby="theme-label">
        {choice("system", "System")} {choice("light", "Light")} {choice("dark", "Dark")}
      </span>
    </form>
  );
}

export function Layout(props: { ctx: PageContext; title: string; section: Section; children: ComponentChildren; head?: ComponentChildren }) {
  const { ctx } = props;
  const { css, js, htmx } = assets();
  const s = ctx.session;
  return (
    <html lang="en" data-theme={ctx.theme === "system" ? undefined : ctx.theme}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content={HTMX_CONFIG} />
        <meta name="referrer" content="same-origin" />
        {/* No favicon request (and no 404 in the console): an empty icon, allowed by img-src data:. */}
        <link rel="icon" href="data:," />
        <title>{`${props.title} · pg-webhooks admin`}</title>
        <link rel="stylesheet" href={`/admin/assets/${css.name}`} />
        <script src={`/admin/assets/${htmx.name}`} defer></script>
        <script src={`/admin/assets/${js.name}`} defer></script>
        {props.head}
      </head>
      <body hx-headers={s ? JSON.stringify({ "x-csrf-token": s.csrf }) : undefined}>
        <header class="top">
          <a class="brand" href="/admin">
            pg-webhooks
          </a>
          {s ? <Nav ctx={ctx} section={props.section} /> : null}
          <div class="who">
            {s ? (
              <>
                <span>{s.tenant === null ? "admin key (every tenant)" : `tenant ${s.tenant}`}</span>
                <form method="post" action="/admin/signout" class="inline">
                  <CsrfField ctx={ctx} />
                  <button type="submit">Sign out</button>
                </form>
              </>
            ) : null}
            <ThemeSwitch ctx={ctx} />
          </div>
        </header>
        <main id="main">{props.children}</main>
      </body>
    </html>
  );
}

/** Sends a whole page (or, for an htmx request that asks for one, a fragment). */
export function sendHtml(reply: FastifyReply, node: VNode, status = 200, fragment = false): FastifyReply {
  const html = renderToString(node);
  return reply
    .code(status)
    .type("text/html; charset=utf-8")
    .send(fragment ? html : `<!doctype html>\n${html}`);
}

export function when(d: Date | null | undefined): string {
  if (!d) return "—";
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function Time({ d }: { d: Date | null | undefined }) {
  return d ? <time datetime={d.toISOString()}>{when(d)}</time> : <span class="muted">—</span>;
}

export function FieldError({ id, message }: { id: string; message: string | undefined }) {
  return message ? (
    <span class="error" id={id}>
      {message}
    </span>
  ) : null;
}
