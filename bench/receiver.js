// Benchmark receiver: a separate process (forked with IPC) that answers 200 to every request
// (except under /hang, which never answers), counting those not under /sibling,
// counts them and reports receipt times. Plain JS so it starts without ts-node.
// Times are performance.timeOrigin + performance.now() (ms since the epoch, sub-ms precision),
// comparable with the parent's clock on the same machine.
"use strict";
const http = require("node:http");
const { performance } = require("node:perf_hooks");

const now = () => performance.timeOrigin + performance.now();
const SEQ = /"seq":(\d+)/;

let count = 0;
let firstAt = 0;
let lastAt = 0;
let record = false;
let times = new Map(); // seq -> first receipt time (only while record is set)

const server = http.createServer((req, res) => {
  // A sick endpoint for the isolation scenario: reads the request, never answers, counts nothing.
  if (req.url.startsWith("/hang")) {
    req.resume();
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const t = now();
    // The isolation scenario's healthy sibling: answered, not counted.
    if (req.url.startsWith("/sibling")) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    count++;
    if (!firstAt) firstAt = t;
    lastAt = t;
    if (record) {
      const m = SEQ.exec(Buffer.concat(chunks).toString("utf8"));
      if (m && !times.has(m[1])) times.set(m[1], t);
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
});
server.keepAliveTimeout = 60000;

process.on("message", (msg) => {
  if (msg.cmd === "reset") {
    count = 0; firstAt = 0; lastAt = 0; record = !!msg.record; times = new Map();
    process.send({ id: msg.id, ok: true });
  } else if (msg.cmd === "stats") {
    process.send({ id: msg.id, count, firstAt, lastAt, times: msg.times ? [...times] : undefined });
  } else if (msg.cmd === "close") {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  }
});
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => {
  process.send({ ready: true, port: server.address().port });
});
