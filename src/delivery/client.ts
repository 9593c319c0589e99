// The HTTP sender: one keep-alive undici Agent, an SSRF-guarded DNS lookup, a hard time limit
// per attempt and a capped read of the response. It reports outcomes; it never throws.
import { subscribe } from "node:diagnostics_channel";
import { TextDecoder } from "node:util";
import { lookup as dnsLookup } from "node:dns";
import type { LookupFunction } from "node:net";
import { performance } from "node:perf_hooks";
import { Agent, request } from "undici";
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { assertUrlAllowed, guardedLookup } from "./ssrf";
import { timerMs } from "../util/timer";
import type { HttpMethod } from "../model/enums";

export interface OutgoingRequest {
  url: string;
  method: HttpMethod;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

export interface AttemptOutcome {
  /** A 2xx status with the whole exchange completed in time. */
  ok: boolean;
  status: number | null;
  headers: Record<string, string> | null;
  /** At most RESPONSE_BODY_CHARS characters. */
  body: string | null;
  durationMs: number;
  error: string | null;
  /** From Retry-After (seconds or HTTP date), whatever the status. */
  retryAfterMs: number | null;
  startedAt: Date;
  /** The IP address the request went to (the socket's remote address); null when none was reached. */
  remoteAddress: string | null;
  /** What was changed to turn the response into text (invalid bytes for its charset). */
  notes: string[];
}

export interface Sender {
  send(req: OutgoingRequest): Promise<AttemptOutcome>;
  close(): Promise<void>;
}

export interface SenderOptions {
  allowPrivateTargets: boolean;
  /** Bytes of response body read before the rest is dropped; default 64 KiB. */
  maxResponseBytes?: number;
  /** The resolver whose answers are guarded; dns.lookup unless a test maps names itself. */
  lookup?: LookupFunction;
}

/** What an attempt row keeps of the response body. */
export const RESPONSE_BODY_CHARS = 5000;
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;
// Enough to keep a busy endpoint fed without one endpoint hoarding sockets.
const CONNECTIONS_PER_ORIGIN = 64;

/** Milliseconds to wait according to a Retry-After value (delta-seconds or an HTTP date). */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // Date.parse accepts almost anything ("1.5" is a date to V8); insist on a real HTTP date.
  if (!/GMT$/i.test(v) || !/[A-Za-z]{3}/.test(v)) return null;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

function flattenHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

function describeError(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) {
    // Happy-eyeballs connects fail with one error per address and an empty message.
    return [...new Set(e.errors.map(describeError))].join("; ");
  }
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e.message) return e.message;
    return code ?? e.name;
  }
  return String(e);
}

/** Reads at most maxBytes, then stops, so a huge or endless body costs nothing more. */
async function readCapped(body: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    const room = maxBytes - size;
    if (buf.length >= room) {
      chunks.push(buf.subarray(0, room));
      size += room;
      break; // leaving the loop destroys the stream and with it the connection
    }
    chunks.push(buf);
    size += buf.length;
  }
  return Buffer.concat(chunks, size);
}

/** The charset a content-type names, if TextDecoder knows it; else UTF-8. */
function decoderFor(contentType: string | undefined): TextDecoder {
  const label = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? "")?.[1];
  if (label) {
    try {
      return new TextDecoder(label, { fatal: true });
    } catch {
      // An unknown label: UTF-8, as for no label.
    }
  }
  return new TextDecoder("utf-8", { fatal: true });
}

/**
 * The body as text in its declared charset (UTF-8 by default). Bytes that are invalid in it
 * become U+FFFD, and the returned note says so. A body cut at the byte cap may end inside a
 * character; that is not counted as invalid.
 */
export function decodeBody(bytes: Buffer, contentType: string | undefined, truncated: boolean): { text: string; note: string | null } {
  const strict = decoderFor(contentType);
  try {
    return { text: strict.decode(bytes, { stream: truncated }), note: null };
  } catch {
    const lenient = new TextDecoder(strict.encoding, { fatal: false });
    return {
      text: lenient.decode(bytes, { stream: truncated }),
      note: `response body: bytes that are not valid ${strict.encoding} replaced with U+FFFD`,
    };
  }
}

// The address each request's socket is connected to. undici announces every request it
// writes on this channel with its socket; our requests are told apart by their body Buffer,
// which undici keeps as the request's body.
const addressOf = new WeakMap<object, string | null>();
subscribe("undici:client:sendHeaders", (message) => {
  const { request, socket } = message as { request?: { body?: unknown }; socket?: { remoteAddress?: string } };
  const body = request?.body;
  if (typeof body === "object" && body !== null && addressOf.has(body)) addressOf.set(body, socket?.remoteAddress ?? null);
});

function truncateChars(s: string, max: number): string {
  if (s.length <= max) return s;
  let cut = s.slice(0, max);
  // Don't leave half a surrogate pair at the end.
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut;
}

class TimeoutError extends Error {
  override name = "TimeoutError";
}

export function createSender(opts: SenderOptions): Sender {
  const allowPrivate = opts.allowPrivateTargets;
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const agent = new Agent({
    connections: CONNECTIONS_PER_ORIGIN,
    // IP literals never reach lookup; assertUrlAllowed covers those before each send.
    connect: { lookup: guardedLookup(opts.lookup ?? dnsLookup, allowPrivate) },
  });

  async function send(req: OutgoingRequest): Promise<AttemptOutcome> {
    const startedAt = new Date();
    const t0 = performance.now();
    let status: number | null = null;
    let headers: Record<string, string> | null = null;
    let retryAfterMs: number | null = null;
    const notes: string[] = [];
    // A Buffer, which undici keeps as the request's body: the key of the address watch.
    const payload = Buffer.from(req.body, "utf8");
    addressOf.set(payload, null);
    const finish = (body: string | null, error: string | null): AttemptOutcome => ({
      ok: error === null && status !== null && status >= 200 && status < 300,
      status,
      headers,
      body,
      durationMs: Math.round(performance.now() - t0),
      error,
      retryAfterMs,
      startedAt,
      remoteAddress: addressOf.get(payload) ?? null,
      notes,
    });

    try {
      assertUrlAllowed(req.url, allowPrivate);
    } catch (e) {
      return finish(null, describeError(e));
    }

    // One deadline for connect, headers and body alike.
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new TimeoutError(`timeout after ${req.timeoutMs} ms`)),
      timerMs(req.timeoutMs),
    );
    let responseBody: Readable | null = null;
    try {
      // undici's request() has no redirect handling unless asked, so 3xx comes back as is.
      const res = await request(req.url, {
        dispatcher: agent,
        method: req.method,
        headers: req.headers,
        body: payload,
        signal: controller.signal,
      });
      responseBody = res.body;
      status = res.statusCode;
      headers = flattenHeaders(res.headers);
      retryAfterMs = parseRetryAfter(headers["retry-after"]);
      const bytes = await readCapped(res.body, maxBytes);
      const { text, note } = decodeBody(bytes, headers["content-type"], bytes.length >= maxBytes);
      if (note) notes.push(note);
      return finish(truncateChars(text, RESPONSE_BODY_CHARS), null);
    } catch (e) {
      const reason: unknown = controller.signal.reason;
      const error = controller.signal.aborted && reason instanceof TimeoutError ? reason.message : describeError(e);
      return finish(null, error);
    } finally {
      clearTimeout(timer);
      if (responseBody !== null && !responseBody.destroyed) {
        // Destroying an unfinished undici body emits an abort error; nobody else is listening.
        responseBody.on("error", () => {});
        responseBody.destroy();
      }
    }
  }

  return {
    send,
    async close() {
      await agent.close();
    },
  };
}
