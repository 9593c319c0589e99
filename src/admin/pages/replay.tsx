// Bulk replay from the deliveries list's current filter: first "N deliveries match", then queue
// them (at an optional rate) in the background, with a progress page. The same service functions
// as `pg-webhooks replay`: findReplayable, then queueReplayPaced. A run's progress is kept in
// this process's memory (the deliveries it queued are in the database either way).
import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { ApiOptions } from "../../api/app";
import { DomainError } from "../../errors";
import { REPLAYABLE_STATUSES } from "../../model/enums";
import { findReplayable, queueReplayPaced, RESPONSE_CLASSES, type ReplayQuery } from "../../services/deliveries";
import { parseSince } from "../../util/duration";
import { field, formOf, type Form } from "../forms";
import { adminScope, isHtmx, pageContext, seeOther } from "../http";
import { CsrfField, Layout, sendHtml, type PageContext } from "../layout";

interface ReplayRun {
  id: string;
  /** The session key that started it: only its sessions see the run. */
  keyId: string;
  total: number;
  done: number;
  queued: number;
  finished: boolean;
  error: string | null;
  startedAt: Date;
}

/** Runs kept for their progress pages; the oldest are forgotten first. */
const KEEP_RUNS = 50;

const blank = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);
const text = z.preprocess(blank, z.string().max(200).optional());
const when = z.preprocess(
  blank,
  z
    .string()
    .max(100)
    .transform((t, ctx) => {
      try {
        return parseSince(t);
      } catch (e) {
        ctx.addIssue({ code: "custom", message: e instanceof Error ? e.message : String(e) });
        return z.NEVER;
      }
    })
    .optional(),
);

const replayFilter = z.object({
  status: z.preprocess(blank, z.enum(REPLAYABLE_STATUSES, { error: `only finished deliveries can be replayed: ${REPLAYABLE_STATUSES.join(", ")}` }).default("failed")),
  webhook: z.preprocess(blank, z.uuid({ error: "expected a webhook id" }).optional()),
  event: text,
  tenant: text,
  response: z.preprocess(blank, z.enum(RESPONSE_CLASSES).optional()),
  since: when,
  until: when,
  id: z.preprocess(blank, z.uuid({ error: "expected an event id" }).optional()),
});

type RawFilter = Record<string, string | undefined>;

function rawFilter(source: Record<string, unknown> | Form): RawFilter {
  const get = (k: string) => (source instanceof Map ? source.get(k)?.[0] : typeof source[k] === "string" ? (source[k] as string) : undefined);
  const out: RawFilter = {};
  for (const k of ["status", "webhook", "event", "tenant", "response", "since", "until", "id"]) out[k] = get(k);
  return out;
}

function toQuery(raw: RawFilter): { query: ReplayQuery; problems: string[] } {
  const parsed = replayFilter.safeParse(raw);
  if (!parsed.success) return { query: {}, problems: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`) };
  const f = parsed.data;
  return {
    query: { status: f.status, webhook_id: f.webhook, event: f.event, tenant: f.tenant, response_class: f.response, since: f.since, until: f.until, event_id: f.id },
    problems: [],
  };
}

function Hidden({ raw }: { raw: RawFilter }) {
  return (
    <>
      {Object.entries(raw).map(([k, v]) => (v === undefined ? null : <input type="hidden" name={k} value={v} />))}
    </>
  );
}

function describe(raw: RawFilter): string {
  const parts = Object.entries(raw)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${k} ${v}`);
  return parts.length === 0 ? "every failed delivery" : parts.join(", ");
}

function ConfirmPage({ ctx, raw, matched, problems }: { ctx: PageContext; raw: RawFilter; matched: number; problems: string[] }) {
  const back = `/admin/deliveries?${new URLSearchParams(Object.entries(raw).filter((e): e is [string, string] => e[1] !== undefined)).toString()}`;
  return (
    <Layout ctx={ctx} title="Replay deliveries" section="deliveries">
      <h1>Replay deliveries</h1>
      {problems.length > 0 ? (
        <div class="notice bad" role="alert">
          {problems.map((p) => (
            <p>{p}</p>
          ))}
        </div>
      ) : (
        <>
          <p role="status">
            <strong id="replay-count">{matched} deliveries match</strong> ({describe(raw)}; deliveries of disabled or deleted webhooks are left out).
          </p>
          {matched > 0 ? (
            <form method="post" action="/admin/replay">
              <CsrfField ctx={ctx} />
              <Hidden raw={raw} />
              <div class="field">
                <label for="rate">At most this many per second</label>
                <input id="rate" name="rate" type="number" min="1" max="10000" aria-describedby="rate-hint" />
                <span class="hint" id="rate-hint">
                  Blank: as fast as they can be queued. A recovering endpoint may prefer 20.
                </span>
              </div>
              <button type="submit" class="primary">
                Replay {matched} deliveries
              </button>
            </form>
          ) : null}
        </>
      )}
      <p>
        <a href={back}>Back to the deliveries</a>
      </p>
    </Layout>
  );
}

function Progress({ run }: { run: ReplayRun }) {
  const pct = run.total === 0 ? 100 : Math.floor((run.done / run.total) * 100);
  return (
    <div
      id="replay-progress"
      hx-get={run.finished ? undefined : `/admin/replay/${run.id}`}
      hx-trigger={run.finished ? undefined : "every 1s"}
      hx-select="#replay-progress"
      hx-swap="outerHTML"
      role="status"
      aria-live="polite"
    >
      <progress max={run.total} value={run.done} aria-label="Replay progress">
        {pct}%
      </progress>{" "}
      <span>
        {run.done} of {run.total} handled{run.finished ? `, ${run.queued} queued — done.` : "…"}
      </span>
      {run.finished && run.queued < run.total ? (
        <p class="hint">{run.total - run.queued} were pending again already (queued by someone else meanwhile).</p>
      ) : null}
      {run.error ? <p class="bad">{run.error}</p> : null}
    </div>
  );
}

function ProgressPage({ ctx, run }: { ctx: PageContext; run: ReplayRun }) {
  return (
    <Layout ctx={ctx} title="Replay" section="deliveries" head={run.finished ? undefined : <noscript><meta http-equiv="refresh" content="2" /></noscript>}>
      <h1>Replay</h1>
      <Progress run={run} />
      <p>
        <a href="/admin/deliveries?status=pending">The deliveries now pending</a>
      </p>
    </Layout>
  );
}

export function registerReplayPages(app: FastifyInstance, { conn }: ApiOptions): void {
  const runs = new Map<string, ReplayRun>();

  const keyIdOf = (request: FastifyRequest) => {
    const s = request.adminSession;
    if (s === null) throw new DomainError("unauthorized", "sign in first");
    return s.keyId;
  };

  app.get("/replay", async (request, reply) => {
    const scope = adminScope(request);
    const raw = rawFilter((request.query ?? {}) as Record<string, unknown>);
    const { query, problems } = toQuery(raw);
    const matched = problems.length > 0 ? 0 : (await findReplayable(conn, scope, query)).length;
    return sendHtml(reply, <ConfirmPage ctx={pageContext(request)} raw={raw} matched={matched} problems={problems} />, problems.length > 0 ? 400 : 200);
  });

  app.post("/replay", async (request, reply) => {
    const scope = adminScope(request);
    const form = formOf(request);
    const raw = rawFilter(form);
    const { query, problems } = toQuery(raw);
    const rateText = field(form, "rate");
    const rate = rateText === undefined ? undefined : Number(rateText);
    if (rate !== undefined && !(Number.isFinite(rate) && rate >= 1 && rate <= 10000)) problems.push("rate: expected 1 to 10000 per second, or blank");
    if (problems.length > 0) return sendHtml(reply, <ConfirmPage ctx={pageContext(request)} raw={raw} matched={0} problems={problems} />, 400);
    const ids = await findReplayable(conn, scope, query);
    const run: ReplayRun = { id: randomUUID(), keyId: keyIdOf(request), total: ids.length, done: 0, queued: 0, finished: false, error: null, startedAt: new Date() };
    runs.set(run.id, run);
    for (const old of runs.keys()) if (runs.size > KEEP_RUNS) runs.delete(old);
    // In the background: the page follows its progress.
    queueReplayPaced(conn, ids, { ratePerS: rate, onProgress: (done) => (run.done = done) }).then(
      (queued) => {
        run.queued = queued;
        run.done = run.total;
        run.finished = true;
      },
      (e: unknown) => {
        run.error = `stopped: ${e instanceof DomainError ? e.message : "the database failed; the server log has the details"}`;
        run.finished = true;
        request.log.error({ err: e }, "admin replay failed");
      },
    );
    return seeOther(request, reply, `/admin/replay/${run.id}`);
  });

  app.get<{ Params: { id: string } }>("/replay/:id", async (request, reply) => {
    const run = runs.get(request.params.id);
    if (!run || run.keyId !== keyIdOf(request)) throw new DomainError("not_found", "no such replay (runs are kept by the process that started them, until it restarts)");
    if (isHtmx(request)) return sendHtml(reply, <Progress run={run} />, 200, true);
    return sendHtml(reply, <ProgressPage ctx={pageContext(request)} run={run} />);
  });
}
