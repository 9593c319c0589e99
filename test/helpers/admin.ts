// A browser-like client of the admin UI over app.inject(): it signs in with a key, keeps the
// session cookie, and posts forms with the page's CSRF token as a browser would.
import type { LightMyRequestResponse } from "fastify";
import type { Api } from "./api";

export interface AdminClient {
  cookie: string;
  csrf: string;
  get(url: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  /** Posts a form; `_csrf` is added unless `csrf` is false (or a string to send instead). */
  post(url: string, fields?: Record<string, string | string[]>, opts?: { csrf?: boolean | string; headers?: Record<string, string> }): Promise<LightMyRequestResponse>;
}

export function formBody(fields: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  return p.toString();
}

export function setCookieOf(res: LightMyRequestResponse): string[] {
  const h = res.headers["set-cookie"];
  return h === undefined ? [] : Array.isArray(h) ? h : [h];
}

/** The CSRF token a page carries in its forms. */
export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m?.[1]) throw new Error("no CSRF token in the page");
  return m[1];
}

export async function signIn(api: Api, key: string): Promise<AdminClient> {
  const res = await api.app.inject({
    method: "POST",
    url: "/admin/signin",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    payload: formBody({ key }),
  });
  if (res.statusCode !== 303) throw new Error(`sign-in answered ${res.statusCode}: ${res.body.slice(0, 300)}`);
  const session = setCookieOf(res).find((c) => c.startsWith("pgw_session="));
  if (!session) throw new Error("no session cookie");
  const cookie = session.split(";")[0] ?? "";
  const page = await api.app.inject({ method: "GET", url: "/admin/webhooks", headers: { cookie } });
  const client: AdminClient = {
    cookie,
    csrf: csrfOf(page.body),
    get: (url, headers = {}) => api.app.inject({ method: "GET", url, headers: { cookie: client.cookie, ...headers } }),
    post: (url, fields = {}, opts = {}) => {
      const csrf = opts.csrf === undefined || opts.csrf === true ? client.csrf : opts.csrf;
      const body = csrf === false ? fields : { ...fields, _csrf: csrf };
      return api.app.inject({
        method: "POST",
        url,
        headers: { cookie: client.cookie, "content-type": "application/x-www-form-urlencoded", ...opts.headers },
        payload: formBody(body),
      });
    },
  };
  return client;
}
