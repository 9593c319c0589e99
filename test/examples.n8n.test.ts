// The n8n workflows in examples/n8n: importable n8n workflow JSON, and their Code nodes' own
// JavaScript, run in node:vm with a stand-in for what n8n hands a Code node ($input, $json,
// this.helpers.getBinaryDataBuffer, require limited to NODE_FUNCTION_ALLOW_BUILTIN=crypto),
// against real signed deliveries from a real dispatcher: valid ones pass, tampered ones throw.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { z } from "zod";
import { createTestDatabase, emptyWebhookTables, type TestDatabase } from "./helpers/db";
import { startReceiver, type Receiver, type ReceivedRequest } from "./helpers/receiver";
import { insertWebhook, runDispatcher, settled, type RunningDispatcher } from "./helpers/pipeline";

const nodeSchema = z.object({
  id: z.uuid(),
  name: z.string().min(1),
  type: z.string().regex(/^n8n-nodes-base\.[A-Za-z]+$/),
  typeVersion: z.number(),
  position: z.tuple([z.number(), z.number()]),
  parameters: z.record(z.string(), z.unknown()),
  webhookId: z.uuid().optional(),
});
const workflowSchema = z.object({
  name: z.string().min(1),
  nodes: z.array(nodeSchema).min(2),
  connections: z.record(
    z.string(),
    z.object({ main: z.array(z.array(z.object({ node: z.string(), type: z.literal("main"), index: z.number().int() }))) }),
  ),
  settings: z.record(z.string(), z.unknown()).optional(),
});
type Workflow = z.output<typeof workflowSchema>;

function load(file: string): Workflow {
  return workflowSchema.parse(JSON.parse(readFileSync(join(__dirname, "..", "examples", "n8n", file), "utf8")));
}

const node = (wf: Workflow, type: string) => {
  const n = wf.nodes.find((x) => x.type === type);
  if (!n) throw new Error(`no ${type} node in ${wf.name}`);
  return n;
};

const hostRequire = createRequire(__filename);

interface N8nItem {
  json: { headers: Record<string, string>; params: object; query: object; body: unknown; webhookUrl: string; executionMode: string };
  binary?: { data: { data: string; mimeType: string; fileName: string } };
}

/** What the Webhook node makes of a request: lower-cased headers, the parsed body, and with Raw Body the bytes as binary "data". */
function webhookItem(req: { headers: IncomingHttpHeaders; body: string }, rawBody: boolean): N8nItem {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  return {
    json: { headers, params: {}, query: {}, body: JSON.parse(req.body) as unknown, webhookUrl: "http://n8n.local/webhook/x", executionMode: "production" },
    ...(rawBody ? { binary: { data: { data: Buffer.from(req.body, "utf8").toString("base64"), mimeType: "application/json", fileName: "data" } } } : {}),
  };
}

/**
 * Runs a Code node's jsCode as n8n does: the body of an async function with `this` carrying the
 * helpers, in "Run Once for All Items" ($input.all/first) or "Run Once for Each Item" ($json) mode.
 */
async function runCodeNode(code: string, mode: string, item: N8nItem, secrets: Record<string, string>): Promise<unknown> {
  let js = code;
  for (const [placeholder, secret] of Object.entries(secrets)) js = js.replace(placeholder, secret);
  const sandbox = {
    Buffer,
    $input: { all: () => [item], first: () => item, item },
    ...(mode === "runOnceForEachItem" ? { $json: item.json } : {}),
    // NODE_FUNCTION_ALLOW_BUILTIN=crypto: that one module and no other.
    require: (name: string) => {
      if (name !== "crypto") throw new Error(`Cannot find module '${name}' (not allowed by NODE_FUNCTION_ALLOW_BUILTIN)`);
      return hostRequire("node:crypto") as unknown;
    },
  };
  const helpers = {
    getBinaryDataBuffer: async (index: number, property: string) => {
      const b = index === 0 ? item.binary?.[property as "data"] : undefined;
      if (!b) throw new Error(`no binary property "${property}" on item ${index}: turn on the Webhook node's Raw Body option`);
      return Buffer.from(b.data, "base64");
    },
  };
  const fn = runInNewContext(`(async function () {\n${js}\n})`, sandbox) as (this: unknown) => Promise<unknown>;
  return fn.call({ helpers });
}

const standard = load("standard-webhooks.json");
const hex = load("hex-signature.json");

describe("the n8n workflow files", () => {
  it.each([
    ["standard-webhooks.json", standard, true],
    ["hex-signature.json", hex, false],
  ])("%s: a Webhook node answering when the last node finishes, wired to a Code node", (_file, wf, rawBody) => {
    const hook = node(wf, "n8n-nodes-base.webhook");
    const code = node(wf, "n8n-nodes-base.code");
    // Without lastNode the Webhook node answers 200 before the Code node rejects anything.
    expect(hook.parameters).toMatchObject({ httpMethod: "POST", responseMode: "lastNode" });
    expect(hook.webhookId).toBeDefined();
    expect((hook.parameters.options as Record<string, unknown>).rawBody === true).toBe(rawBody);
    expect(wf.connections[hook.name]?.main[0]).toEqual([{ node: code.name, type: "main", index: 0 }]);
    for (const targets of Object.values(wf.connections)) {
      for (const t of targets.main.flat()) expect(wf.nodes.map((n) => n.name)).toContain(t.node);
    }
    expect(code.parameters.jsCode).toEqual(expect.stringContaining("require('crypto')"));
  });

  it("hex: signs JSON.stringify($json.body), not $json", () => {
    const js = String(node(hex, "n8n-nodes-base.code").parameters.jsCode);
    expect(js).toContain("JSON.stringify($json.body)");
    expect(js).not.toMatch(/JSON\.stringify\(\$json\)/);
    expect(String(node(standard, "n8n-nodes-base.code").parameters.jsCode)).toContain("this.helpers.getBinaryDataBuffer(0, 'data')");
  });
});

describe("the Code nodes against real deliveries", () => {
  let t: TestDatabase;
  let rx: Receiver;
  let dispatcher: RunningDispatcher;

  beforeAll(async () => {
    t = await createTestDatabase();
    rx = await startReceiver();
    dispatcher = await runDispatcher(t.url);
  });
  afterAll(async () => {
    await dispatcher?.stop();
    await rx?.close();
    await t?.close();
  });
  beforeEach(async () => {
    await emptyWebhookTables(t.sql);
    rx.requests.length = 0;
  });

  // Data a CRM row really holds: unicode, line and paragraph separators, HTML, odd keys, nesting.
  const DATA = [
    { id: 1, name: "Zoë 😀 Ürgüp", note: "line\u2028para\u2029end</script>", "odd key \"q\"": [1, 2.5, -0, null, true] },
    { id: 2, nested: { a: { b: { c: { d: [{ e: "deep" }] } } } }, empty: {}, list: [], big: 12345678901234 },
    { id: 3, text: "tab\there\nnew line \\ back slash", amount: 1e21, small: 1e-7 },
  ];

  async function deliveries(scheme: "standard" | "hex" | "sha256"): Promise<{ reqs: ReceivedRequest[]; secret: string }> {
    const secret = scheme === "standard" ? undefined : "n8n-hex-secret-Zoë";
    const w = await insertWebhook(t.sql, { url: `${rx.url}/n8n`, signature_scheme: scheme, ...(secret ? { secret } : {}) });
    for (const d of DATA) await t.sql`select webhooks.emit('crm.row', ${t.sql.json(d)})`;
    await settled(t.sql, DATA.length);
    return { reqs: await rx.waitFor(DATA.length), secret: w.secret };
  }

  it("standard: passes every real delivery and rejects tampered bodies, ids, signatures and the wrong secret", async () => {
    const { reqs, secret } = await deliveries("standard");
    const code = node(standard, "n8n-nodes-base.code");
    const run = (req: { headers: IncomingHttpHeaders; body: string }, key = secret) =>
      runCodeNode(String(code.parameters.jsCode), "runOnceForAllItems", webhookItem(req, true), { "whsec_REPLACE_WITH_YOUR_SECRET": key });
    for (const req of reqs) {
      await expect(run(req)).resolves.toEqual([{ json: { verified: true, event: JSON.parse(req.body) } }]);
    }
    const req = reqs[0]!;
    const other = "whsec_" + Buffer.alloc(24, 9).toString("base64");
    await expect(run({ headers: req.headers, body: req.body.replace("Zoë", "Zoe") })).rejects.toThrow("invalid webhook signature");
    await expect(run({ headers: { ...req.headers, "webhook-id": "evt_other" }, body: req.body })).rejects.toThrow("invalid webhook signature");
    await expect(run({ headers: { ...req.headers, "webhook-signature": "v1,AAAA" }, body: req.body })).rejects.toThrow("invalid webhook signature");
    await expect(run({ headers: { ...req.headers, "webhook-timestamp": "1000000000" }, body: req.body })).rejects.toThrow(/timestamp/);
    await expect(run(req, other)).rejects.toThrow("invalid webhook signature");
    // Without Raw Body there are no bytes to verify: it says so instead of passing.
    await expect(
      runCodeNode(String(code.parameters.jsCode), "runOnceForAllItems", webhookItem(req, false), { "whsec_REPLACE_WITH_YOUR_SECRET": secret }),
    ).rejects.toThrow(/Raw Body/);
  });

  it.each([
    ["hex", "x-webhook-signature"],
    ["sha256", "x-hub-signature-256"],
  ] as const)("%s: passes every real delivery and rejects tampered bodies and signatures", async (scheme, header) => {
    const { reqs, secret } = await deliveries(scheme);
    const code = node(hex, "n8n-nodes-base.code");
    const js = String(code.parameters.jsCode).replace("const HEADER = 'x-webhook-signature';", `const HEADER = '${header}';`);
    const run = (req: { headers: IncomingHttpHeaders; body: string }) =>
      runCodeNode(js, String(code.parameters.mode), webhookItem(req, false), { REPLACE_WITH_YOUR_SECRET: secret });
    for (const req of reqs) {
      // The property the recipe rests on: the parsed body stringifies back to the bytes signed.
      expect(JSON.stringify(JSON.parse(req.body))).toBe(req.body);
      await expect(run(req)).resolves.toEqual({ json: { verified: true, event: JSON.parse(req.body) } });
    }
    const req = reqs[0]!;
    await expect(run({ headers: req.headers, body: req.body.replace("Zoë", "Zoe") })).rejects.toThrow("invalid webhook signature");
    await expect(run({ headers: { ...req.headers, [header]: "ab".repeat(32) }, body: req.body })).rejects.toThrow("invalid webhook signature");
    await expect(run({ headers: { ...req.headers, [header]: "é".repeat(64) }, body: req.body })).rejects.toThrow("invalid webhook signature");
    const { [header]: _, ...unsigned } = req.headers;
    await expect(run({ headers: unsigned, body: req.body })).rejects.toThrow("invalid webhook signature");
  });
});
