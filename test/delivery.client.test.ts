// The undici sender against real sockets: outcomes, limits and the SSRF guard at connect time.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { LookupFunction } from "node:net";
import { createSender, parseRetryAfter, type OutgoingRequest, type Sender } from "../src/delivery/client";
import { startReceiver, type Receiver } from "./helpers/receiver";

const post = (url: string, extra: Partial<OutgoingRequest> = {}): OutgoingRequest => ({
  url,
  method: "POST",
  headers: { "content-type": "application/json", "x-test": "yes" },
  body: '{"hello":"world"}',
  timeoutMs: 5000,
  ...extra,
});

/** Maps test names to addresses, the way a hostile DNS record would. */
const mappedLookup =
  (table: Record<string, string>): LookupFunction =>
  (hostname, options, callback) => {
    const address = table[hostname];
    if (address === undefined) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), "", 4);
    } else if (options.all) callback(null, [{ address, family: 4 }]);
    else callback(null, address, 4);
  };

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

let receiver: Receiver;
let open: Sender;

beforeEach(async () => {
  receiver = await startReceiver();
  open = createSender({ allowPrivateTargets: true });
});

afterEach(async () => {
  await open.close();
  await receiver.close();
});

describe("a successful exchange", () => {
  it("sends method, headers and body as given and records the response", async () => {
    receiver.respond({ status: 201, headers: { "x-reply": "r" }, body: "created" });
    const out = await open.send(post(receiver.url + "/hook", { method: "PUT" }));
    expect(out).toMatchObject({ ok: true, status: 201, body: "created", error: null, retryAfterMs: null });
    expect(out.headers?.["x-reply"]).toBe("r");
    expect(out.startedAt).toBeInstanceOf(Date);
    expect(out.durationMs).toBeGreaterThanOrEqual(0);
    const [req] = await receiver.waitFor(1);
    expect(req).toMatchObject({ method: "PUT", path: "/hook", body: '{"hello":"world"}' });
    expect(req?.headers["x-test"]).toBe("yes");
  });

  it("reports a non-2xx status as not ok, without an error", async () => {
    receiver.respond({ status: 500, body: "boom" });
    expect(await open.send(post(receiver.url))).toMatchObject({ ok: false, status: 500, body: "boom", error: null });
  });
});

describe("private targets", () => {
  it("refuses 127.0.0.1 and localhost before any request leaves", async () => {
    const guarded = createSender({ allowPrivateTargets: false });
    try {
      const byIp = await guarded.send(post(receiver.url));
      expect(byIp).toMatchObject({ ok: false, status: null, headers: null, body: null });
      expect(byIp.error).toMatch(/^target 127\.0\.0\.1 is a private address \(loopback\); set WEBHOOKS_ALLOW_PRIVATE_TARGETS=true/);
      const byName = await guarded.send(post(`http://localhost:${receiver.port}/`));
      expect(byName.error).toMatch(/target localhost is a private address/);
    } finally {
      await guarded.close();
    }
    // A marker request through an open sender: the receiver sees only that one.
    await open.send(post(receiver.url + "/marker"));
    expect(receiver.requests.map((r) => r.path)).toEqual(["/marker"]);
  });

  it("allows 127.0.0.1 and localhost when private targets are allowed", async () => {
    expect((await open.send(post(receiver.url + "/a"))).ok).toBe(true);
    expect((await open.send(post(`http://localhost:${receiver.port}/b`))).ok).toBe(true);
    expect(receiver.requests.map((r) => r.path)).toEqual(["/a", "/b"]);
  });

  it("refuses a name that resolves to a private address, checked at connect time", async () => {
    const lookup = mappedLookup({ "hooks.example.test": "127.0.0.1", "intranet.example.test": "10.0.0.9" });
    const guarded = createSender({ allowPrivateTargets: false, lookup });
    const permissive = createSender({ allowPrivateTargets: true, lookup });
    try {
      const out = await guarded.send(post(`http://hooks.example.test:${receiver.port}/x`));
      expect(out).toMatchObject({ ok: false, status: null });
      expect(out.error).toBe(
        "target hooks.example.test resolves to 127.0.0.1, a private address (loopback); set WEBHOOKS_ALLOW_PRIVATE_TARGETS=true to allow it",
      );
      expect((await guarded.send(post(`http://intranet.example.test:${receiver.port}/`))).error).toMatch(/resolves to 10\.0\.0\.9/);
      expect(receiver.requests).toHaveLength(0);
      // The same mapping with private targets allowed really connects: the lookup is the one in use.
      expect((await permissive.send(post(`http://hooks.example.test:${receiver.port}/y`))).ok).toBe(true);
      expect(receiver.requests.map((r) => r.path)).toEqual(["/y"]);
    } finally {
      await guarded.close();
      await permissive.close();
    }
  });

  it("never throws for a URL it cannot send to", async () => {
    const out = await open.send(post("ftp://example.com/x"));
    expect(out).toMatchObject({ ok: false, status: null });
    expect(out.error).toMatch(/scheme ftp:/);
  });
});

describe("limits", () => {
  it("gives up after timeoutMs when the receiver never answers", async () => {
    receiver.respond({ hang: true });
    const out = await open.send(post(receiver.url, { timeoutMs: 300 }));
    expect(out).toMatchObject({ ok: false, status: null, error: "timeout after 300 ms" });
    expect(out.durationMs).toBeGreaterThanOrEqual(290);
    expect(out.durationMs).toBeLessThan(2000);
  });

  it("bounds the body too: headers then a stalled body is a timeout, status kept", async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("partial"); // and never end
    });
    const url = await listen(server);
    try {
      const out = await open.send(post(url, { timeoutMs: 300 }));
      expect(out).toMatchObject({ ok: false, status: 200, error: "timeout after 300 ms" });
      expect(out.durationMs).toBeLessThan(2000);
    } finally {
      await closeServer(server);
    }
  });

  it("does not follow redirects and records Location", async () => {
    receiver.respond((req) => (req.path === "/start" ? { status: 302, headers: { location: "/elsewhere" } } : { status: 200 }));
    const out = await open.send(post(receiver.url + "/start"));
    expect(out).toMatchObject({ ok: false, status: 302, error: null });
    expect(out.headers?.location).toBe("/elsewhere");
    expect(receiver.requests.map((r) => r.path)).toEqual(["/start"]);
  });

  it("keeps the first 5000 characters of the response body", async () => {
    receiver.respond({ status: 400, body: "é".repeat(3000) + "x".repeat(20000) });
    const out = await open.send(post(receiver.url));
    expect(out.body).toBe("é".repeat(3000) + "x".repeat(2000));
  });

  it("cuts a huge streamed response short without reading it", async () => {
    const total = 50 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    let closed: () => void = () => {};
    const socketClosed = new Promise<void>((r) => (closed = r));
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/plain", "content-length": String(total) });
      res.on("close", () => closed());
      // Honour backpressure, so `written` counts only what the client side accepted.
      const pump = (): void => {
        while (written < total && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        if (written >= total) res.end();
      };
      pump();
    });
    const url = await listen(server);
    try {
      const out = await open.send(post(url));
      expect(out).toMatchObject({ ok: true, status: 200, error: null });
      expect(out.body).toBe("a".repeat(5000));
      expect(out.durationMs).toBeLessThan(3000);
      await socketClosed;
      expect(written).toBeLessThan(total / 4);
    } finally {
      await closeServer(server);
    }
  });
});

describe("network errors", () => {
  it("reports connection refused as an error outcome", async () => {
    const gone = await startReceiver();
    await gone.close();
    const out = await open.send(post(gone.url));
    expect(out).toMatchObject({ ok: false, status: null, headers: null, body: null });
    expect(out.error).toMatch(/ECONNREFUSED/);
  });

  it("reports a connection reset as an error outcome", async () => {
    receiver.respond({ reset: true });
    const out = await open.send(post(receiver.url));
    expect(out).toMatchObject({ ok: false, status: null });
    expect(out.error).toMatch(/closed|reset|socket/i);
    expect(receiver.requests).toHaveLength(1);
  });
});

describe("Retry-After", () => {
  it("is read from a 429 in seconds and from a 503 as an HTTP date", async () => {
    receiver.respond({ status: 429, headers: { "retry-after": "120" } });
    expect((await open.send(post(receiver.url))).retryAfterMs).toBe(120_000);

    receiver.respond({ status: 503, headers: { "retry-after": new Date(Date.now() + 60_000).toUTCString() } });
    const fromDate = (await open.send(post(receiver.url))).retryAfterMs;
    expect(fromDate).toBeGreaterThan(55_000);
    expect(fromDate).toBeLessThanOrEqual(60_000);
  });

  it("is read on any status", async () => {
    receiver.respond({ status: 200, headers: { "retry-after": "5" } });
    expect((await open.send(post(receiver.url))).retryAfterMs).toBe(5000);
  });

  const now = Date.parse("2024-05-01T12:00:00Z");
  it.each([
    ["0", 0],
    ["30", 30_000],
    [" 7 ", 7000],
    ["Wed, 01 May 2024 12:01:30 GMT", 90_000],
    ["Wednesday, 01-May-24 12:00:10 GMT", 10_000],
    ["Tue, 30 Apr 2024 00:00:00 GMT", 0], // in the past: retry now
    ["soon", null],
    ["1.5", null],
    ["-5", null],
    ["", null],
    [undefined, null],
  ])("parses %p as %p ms", (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});
