#!/usr/bin/env node
// A tiny webhook receiver for the README walk-through: prints each request and checks its
// Standard Webhooks signature with the `standardwebhooks` library.
//   WEBHOOK_SECRET=whsec_... node examples/receiver.js [port]
const http = require("node:http");
const { Webhook } = require("standardwebhooks");

const port = Number(process.argv[2] ?? 9000);
const secret = process.env.WEBHOOK_SECRET;

http
  .createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let verdict = "not checked (set WEBHOOK_SECRET)";
      if (secret) {
        try {
          new Webhook(secret).verify(body, req.headers);
          verdict = "valid";
        } catch (e) {
          verdict = `INVALID (${e.message})`;
        }
      }
      console.log(`${req.method} ${req.url}  event=${req.headers["x-webhook-event"]}  signature ${verdict}`);
      console.log(`  ${body}`);
      res.writeHead(200).end("ok");
    });
  })
  .listen(port, "127.0.0.1", () => console.log(`receiver listening on http://127.0.0.1:${port}`));
