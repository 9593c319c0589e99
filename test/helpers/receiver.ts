// A real HTTP receiver on 127.0.0.1 that records every request and answers as told: any
// status and headers, late, never, with a broken connection, or with an endless body.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";

/** What the receiver did with one request's response, filled in as it happens. */
export interface ResponseLog {
  /** Body bytes handed to the socket; with streamBytes, an upper bound on what the client read. */
  bytesWritten: number;
  /** The whole reply was written (false when the client or the receiver cut it short). */
  completed: boolean;
  /** When the response's connection closed or the response finished, whichever came first. */
  closedAt: number | null;
  /** Resolves at closedAt. */
  closed: Promise<void>;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  receivedAt: number;
  response: ResponseLog;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Never answer (until the client gives up or the receiver closes). */
  hang?: boolean;
  /** Destroy the socket instead of answering. */
  reset?: boolean;
  /**
   * Send the status line and headers (announcing a longer body) and then this much of the
   * body, then destroy the socket: a connection reset mid-response.
   */
  resetMidBody?: string;
  /**
   * Stream this many bytes of body ("a"s, with a content-length) in 64 KiB chunks, writing
   * only as fast as the client reads; response.bytesWritten says how far it got.
   */
  streamBytes?: number;
}

export type Responder = (req: ReceivedRequest, index: number) => Reply;

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  respond(responder: Responder | Reply): void;
  /** Resolves once at least `count` requests have arrived (or rejects after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

const STREAM_CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** Common replies, so test bodies read as the fault they inject. */
export const replies = {
  status: (status: number, body?: string): Reply => ({ status, ...(body === undefined ? {} : { body }) }),
  redirect: (status: 301 | 302 | 303 | 307 | 308, location: string): Reply => ({ status, headers: { location }, body: "" }),
  retryAfter: (status: 429 | 503, value: string): Reply => ({ status, headers: { "retry-after": value } }),
  slow: (delayMs: number, status = 200): Reply => ({ status, delayMs }),
  hang: (): Reply => ({ hang: true }),
  reset: (): Reply => ({ reset: true }),
  resetMidBody: (partial = "partial"): Reply => ({ status: 200, resetMidBody: partial }),
  stream: (bytes: number, status = 200): Reply => ({ status, streamBytes: bytes }),
};

function responseLog(res: ServerResponse): ResponseLog {
  let done: () => void = () => {};
  const log: ResponseLog = {
    bytesWritten: 0,
    completed: false,
    closedAt: null,
    closed: new Promise<void>((r) => (done = r)),
  };
  const close = () => {
    log.closedAt ??= Date.now();
    done();
  };
  res.on("finish", () => {
    log.completed = true;
    close();
  });
  res.on("close", close);
  return log;
}

function answer(res: ServerResponse, reply: Reply, log: ResponseLog, hanging: Set<ServerResponse>): void {
  const headers = { "content-type": "text/plain", ...reply.headers };
  if (reply.reset) {
    res.socket?.destroy();
    return;
  }
  if (reply.hang) {
    hanging.add(res);
    return;
  }
  if (reply.resetMidBody !== undefined) {
    const partial = Buffer.from(reply.resetMidBody);
    res.writeHead(reply.status ?? 200, { ...headers, "content-length": String(partial.length * 10 + 100) });
    log.bytesWritten += partial.length;
    // Flush what we have, then drop the connection with the body unfinished.
    res.write(partial, () => res.socket?.destroy());
    return;
  }
  if (reply.streamBytes !== undefined) {
    const total = reply.streamBytes;
    res.writeHead(reply.status ?? 200, { ...headers, "content-length": String(total) });
    const pump = (): void => {
      while (log.bytesWritten < total && !res.destroyed) {
        const chunk = STREAM_CHUNK.subarray(0, Math.min(STREAM_CHUNK.length, total - log.bytesWritten));
        log.bytesWritten += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
      if (log.bytesWritten >= total && !res.destroyed) res.end();
    };
    pump();
    return;
  }
  const body = reply.body ?? "ok";
  res.writeHead(reply.status ?? 200, headers);
  log.bytesWritten += Buffer.byteLength(body);
  res.end(body);
}

export async function startReceiver(initial: Responder | Reply = { status: 200 }): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  let responder: Responder = typeof initial === "function" ? initial : () => initial;
  const waiters: { count: number; resolve: () => void }[] = [];
  const hanging = new Set<ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const rec: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        receivedAt: Date.now(),
        response: responseLog(res),
      };
      const index = requests.push(rec) - 1;
      for (const w of waiters.slice()) {
        if (requests.length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
      const reply = responder(rec, index);
      if (reply.delayMs && !reply.hang && !reply.reset) {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!res.destroyed) answer(res, reply, rec.response, hanging);
        }, reply.delayMs);
        timers.add(timer);
      } else {
        answer(res, reply, rec.response, hanging);
      }
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    respond(r) {
      responder = typeof r === "function" ? r : () => r;
    },
    waitFor(count, timeoutMs = 20000) {
      if (requests.length >= count) return Promise.resolve(requests);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`receiver got ${requests.length} requests, expected ${count} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve(requests);
          },
        });
      });
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** An http URL on 127.0.0.1 where nothing listens: connecting to it is refused. */
export async function refusedUrl(path = "/"): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return `http://127.0.0.1:${port}${path}`;
}

export interface RawReceiver {
  url: string;
  /** Requests answered so far. */
  count: number;
  close(): Promise<void>;
}

/**
 * A TCP server that answers every HTTP request with exactly these bytes and then closes the
 * connection: for answers node:http refuses to send (NUL bytes, invalid UTF-8, odd status lines).
 */
export async function startRawReceiver(answer: Buffer | string): Promise<RawReceiver> {
  const bytes = Buffer.isBuffer(answer) ? answer : Buffer.from(answer, "latin1");
  const sockets = new Set<Socket>();
  const rx: RawReceiver = { url: "", count: 0, close: async () => {} };
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let received = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/content-length:\s*(\d+)/i.exec(received.subarray(0, end).toString("latin1"))?.[1] ?? 0);
      if (received.length < end + 4 + length) return;
      received = Buffer.alloc(0);
      rx.count++;
      socket.end(bytes);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  rx.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  rx.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return rx;
}
