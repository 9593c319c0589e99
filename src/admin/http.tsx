// What the admin's route handlers share: the page context, the session's scope, htmx-aware
// redirects and the HTML error answer.
import type { FastifyReply, FastifyRequest } from "fastify";
import { DomainError } from "../errors";
import type { Scope } from "../services/scope";
import { sendHtml, type PageContext } from "./layout";
import { ErrorPage } from "./pages/error";
import { themeOf } from "./session";

/** What each page handler gets to render its frame. */
export function pageContext(request: FastifyRequest): PageContext {
  return { session: request.adminSession, theme: themeOf(request), path: request.url.length > 2000 ? "/admin" : request.url };
}

/** The session's scope; only reachable behind the session check. */
export function adminScope(request: FastifyRequest): Scope {
  const s = request.adminSession;
  if (s === null) throw new DomainError("unauthorized", "sign in first");
  return { tenant: s.tenant };
}

export function isHtmx(request: FastifyRequest): boolean {
  return request.headers["hx-request"] === "true";
}

/** A redirect after a POST (303), or for htmx an HX-Redirect it follows. */
export function seeOther(request: FastifyRequest, reply: FastifyReply, to: string): FastifyReply {
  if (isHtmx(request)) return reply.code(200).header("hx-redirect", to).send("");
  return reply.code(303).header("location", to).send("");
}

export function refuse(request: FastifyRequest, reply: FastifyReply, status: number, title: string, message: string): FastifyReply {
  return sendHtml(reply, <ErrorPage ctx={pageContext(request)} status={status} title={title} message={message} />, status, isHtmx(request));
}

