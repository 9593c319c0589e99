// Runs templates off the main thread: one worker (template-worker.ts) renders them one at a
// time. A render still running TEMPLATE_HARD_MS after it started (a built-in stuck in one step,
// which template.ts's step deadline cannot interrupt) or exhausting the worker's heap ends the
// worker: that render fails as cut off, the renders queued behind it go to a fresh worker, and
// the dispatcher's own thread (sends, records, the API) never waits on a template. A webhook
// whose template was cut off this way twice within STRIKE_WINDOW_MS is not rendered for
// SUSPEND_MS: its deliveries fail at once (replayable), so it cannot keep the worker busy.
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import { TEMPLATE_WALL_MS, TemplateError } from "./template";
import type { RenderAnswer, RenderJob } from "./template-worker";

/** A render running this long is ended with its worker (after the in-worker backstop of TEMPLATE_WALL_MS had its chance). */
export const TEMPLATE_HARD_MS = TEMPLATE_WALL_MS + 1_000;
/** The worker's heap: renders build at most 8 M characters of strings; the event itself is copied in. */
export const TEMPLATE_HEAP_MB = 192;
const STRIKES = 2;
const STRIKE_WINDOW_MS = 10 * 60_000;
export const SUSPEND_MS = 10 * 60_000;

interface Pending {
  job: RenderJob;
  key: string;
  resolve(json: string): void;
  reject(e: Error): void;
}

/** The worker's script: the compiled file, or under ts-node / ts-jest the TypeScript source through ts-node. */
function spawn(): Worker {
  const opts = { resourceLimits: { maxOldGenerationSizeMb: TEMPLATE_HEAP_MB, maxYoungGenerationSizeMb: 16 } };
  if (__filename.endsWith(".ts")) {
    const file = join(__dirname, "template-worker.ts");
    return new Worker(`require("ts-node/register/transpile-only"); require(${JSON.stringify(file)});`, { ...opts, eval: true });
  }
  return new Worker(join(__dirname, "template-worker.js"), opts);
}

class TemplateRunner {
  private worker: Worker | null = null;
  private current: (Pending & { timer: NodeJS.Timeout }) | null = null;
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private readonly strikes = new Map<string, number[]>();
  private readonly suspended = new Map<string, { until: number; reason: string }>();

  run(key: string, source: string, input: unknown, bindings: Record<string, unknown>): Promise<string> {
    const s = this.suspended.get(key);
    if (s !== undefined && s.until > Date.now()) {
      const minutes = Math.ceil((s.until - Date.now()) / 60_000);
      return Promise.reject(
        new TemplateError(`template suspended for ${minutes} more min: it was cut off ${STRIKES} times within 10 min (last: ${s.reason})`, "limit"),
      );
    }
    if (s !== undefined) this.suspended.delete(key);
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { id: this.nextId++, source, input, bindings }, key, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.current !== null) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    const w = this.ensureWorker();
    const timer = setTimeout(() => this.kill(`one step of the template ran past ${TEMPLATE_HARD_MS} ms (a built-in such as a regex, $distinct or $sort on a large input)`), TEMPLATE_HARD_MS);
    timer.unref();
    this.current = { ...next, timer };
    w.ref(); // a render in flight keeps the process alive (a CLI preview waits for it)
    w.postMessage(next.job);
  }

  private ensureWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const w = spawn();
    w.unref();
    w.on("message", (a: RenderAnswer) => {
      const c = this.current;
      if (c === null || c.job.id !== a.id) return;
      clearTimeout(c.timer);
      this.current = null;
      if (this.queue.length === 0) w.unref();
      if (a.ok) c.resolve(a.json);
      else c.reject(new TemplateError(a.message, a.kind, a.position));
      this.pump();
    });
    w.on("error", (e: Error & { code?: string }) => {
      const reason =
        e.code === "ERR_WORKER_OUT_OF_MEMORY" ? `the template used more than ${TEMPLATE_HEAP_MB} MB of memory` : `the template's worker failed: ${e.message}`;
      this.lost(w, reason);
    });
    w.on("exit", () => this.lost(w, "the template's worker stopped"));
    this.worker = w;
    return w;
  }

  /** Ends a worker stuck in a render. */
  private kill(reason: string): void {
    const w = this.worker;
    if (w === null) return;
    this.lost(w, reason);
    void w.terminate();
  }

  /** The worker is gone: its render fails as cut off (a strike against its webhook), the queue moves to a new one. */
  private lost(w: Worker, reason: string): void {
    if (this.worker !== w) return;
    this.worker = null;
    const c = this.current;
    this.current = null;
    if (c !== null) {
      clearTimeout(c.timer);
      this.strike(c.key, reason);
      c.reject(new TemplateError(`template cut off: ${reason}`, "limit"));
    }
    this.pump();
  }

  private strike(key: string, reason: string): void {
    const now = Date.now();
    const recent = (this.strikes.get(key) ?? []).filter((t) => now - t < STRIKE_WINDOW_MS);
    recent.push(now);
    this.strikes.set(key, recent);
    if (recent.length >= STRIKES) {
      this.suspended.set(key, { until: now + SUSPEND_MS, reason });
      this.strikes.delete(key);
    }
    if (this.strikes.size > 10_000) this.strikes.clear();
  }
}

let runner: TemplateRunner | null = null;

/**
 * Renders a template in the worker: the body as JSON text. `key` names whose template it is
 * (the webhook), for the suspension after repeated cut-offs. Throws TemplateError as
 * evaluateTemplate does.
 */
export function renderTemplateIsolated(key: string, source: string, input: unknown, bindings: Record<string, unknown>): Promise<string> {
  runner ??= new TemplateRunner();
  return runner.run(`${key}\u0000${source}`, source, input, bindings);
}
