// The worker thread that runs JSONata templates (started by template-runner.ts). A template is
// code a webhook's owner writes; some of JSONata's built-ins (a backtracking regex, $distinct
// over a large array) run as one uninterruptible step, so the guards of template.ts cannot stop
// them in time. Here such a step blocks only this thread, which the dispatcher terminates, and
// its memory is this thread's own heap, capped by resourceLimits.
import { parentPort } from "node:worker_threads";
import { TemplateError, cachedTemplate, evaluateTemplate } from "./template";

export interface RenderJob {
  id: number;
  source: string;
  input: unknown;
  bindings: Record<string, unknown>;
}

export type RenderAnswer =
  | { id: number; ok: true; json: string }
  | { id: number; ok: false; kind: TemplateError["kind"]; message: string; position?: number | undefined };

async function answer(job: RenderJob): Promise<RenderAnswer> {
  try {
    const result = await evaluateTemplate(cachedTemplate(job.source), job.input, job.bindings);
    return { id: job.id, ok: true, json: JSON.stringify(result) };
  } catch (e) {
    if (e instanceof TemplateError) return { id: job.id, ok: false, kind: e.kind, message: e.message, position: e.position };
    return { id: job.id, ok: false, kind: "runtime", message: `template failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}

parentPort?.on("message", (job: RenderJob) => {
  void answer(job).then((a) => parentPort?.postMessage(a));
});
