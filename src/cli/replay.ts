// `pg-webhooks replay`: sends matching deliveries again, safely. It counts first, asks
// (or needs --yes), queues through the service (in chunks, at an optional --rate) with a
// progress bar, and ends with a summary. Deliveries already pending are skipped, so running it
// twice queues nothing twice.
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { DomainError } from "../errors";
import type { CircuitNotice, DeliveryView } from "../model/delivery";
import { listDispatchers } from "../services/status";
import { ADMIN } from "../services/scope";
import { REPLAYABLE_STATUSES } from "../model/enums";
import type { Cli } from "./context";
import { collectUuids, common, oneOf, positiveNumber, uuid, when, type CommonOptions } from "./options";
import { renderTable, type Column } from "./output";

const SAMPLE_SIZE = 10;

interface ReplayOptions extends CommonOptions {
  status: (typeof REPLAYABLE_STATUSES)[number];
  webhook?: string;
  event?: string;
  since?: Date;
  until?: Date;
  delivery?: string[];
  dryRun?: boolean;
  yes?: boolean;
  rate?: number;
}

export interface ReplaySummary {
  matched: number;
  queued: number;
  /** Matched but already pending again (queued by someone else meanwhile). */
  skipped: number;
  dry_run: boolean;
  duration_ms: number;
  /** Webhooks whose open circuit holds the replayed deliveries back until a probe succeeds. */
  circuits: CircuitNotice[];
}

type Sample = Omit<DeliveryView, "attempts">;
const sampleColumns: Column<Sample>[] = [
  { header: "id", value: (d) => d.id },
  { header: "webhook", value: (d) => d.webhook_id },
  { header: "event", value: (d) => d.event_type, max: 32 },
  { header: "status", value: (d) => d.status },
  { header: "last code", value: (d) => d.last_status_code },
  { header: "last error", value: (d) => d.last_error, max: 40 },
  { header: "created", value: (d) => d.created_at },
];

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(question, resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

export function registerReplay(program: Command, cli: Cli): void {
  common(
    program
      .command("replay")
      .description("send matching deliveries again (failed ones by default); asks first unless --yes")
      .option("--status <status>", `which finished deliveries: ${REPLAYABLE_STATUSES.join(", ")}`, oneOf(REPLAYABLE_STATUSES), "failed")
      .option("--webhook <id>", "only this webhook's deliveries", uuid)
      .option("--event <type>", "only this event type (exact, clients.* or *)")
      .option("--since <when>", "created at or after: a duration ago (2h, 7d) or an ISO timestamp", when)
      .option("--until <when>", "created before: a duration ago or an ISO timestamp", when)
      .option("--delivery <ids...>", "only these deliveries (repeatable, or comma-separated)", collectUuids)
      .option("--dry-run", "print how many match and a sample; queue nothing")
      .option("--yes", "do not ask (required when stdin is not a terminal)")
      .option("--rate <n>", "queue at most n deliveries per second, so a recovering endpoint is not flooded", positiveNumber),
    "pg-webhooks replay --status failed --webhook 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --since 2h --dry-run",
    "pg-webhooks replay --status failed --since 2h --rate 20 --yes",
  ).action((opts: ReplayOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { findReplayable, getDelivery, queueReplayPaced, replayCircuits, replayableWebhook } = await import("../services/deliveries.js");
      const started = Date.now();
      if (opts.webhook !== undefined) await replayableWebhook(conn, ADMIN, opts.webhook);
      const query = {
        status: opts.status,
        webhook_id: opts.webhook,
        event: opts.event,
        since: opts.since,
        until: opts.until,
        delivery_ids: opts.delivery,
      };
      const ids = await findReplayable(conn, ADMIN, query);
      const summary: ReplaySummary = {
        matched: ids.length,
        queued: 0,
        skipped: 0,
        dry_run: opts.dryRun === true,
        duration_ms: 0,
        circuits: [],
      };
      const circuits = () => replayCircuits(conn, ADMIN, query, ids);
      const finish = async () => {
        summary.duration_ms = Date.now() - started;
        summary.circuits = summary.queued > 0 ? await circuits() : [];
        for (const c of summary.circuits) out.notice(c.message);
        out.result(summary, () => {
          if (summary.dry_run || summary.matched === 0) return;
          out.say(
            `Replayed ${summary.queued} of ${summary.matched} matching ${opts.status} deliveries` +
              (summary.skipped > 0 ? ` (${summary.skipped} were already pending)` : "") +
              ` in ${(summary.duration_ms / 1000).toFixed(1)}s.`,
          );
        });
      };

      if (ids.length === 0) {
        out.notice(`No ${opts.status} deliveries match; nothing to replay.`);
        await finish();
        return;
      }

      if (opts.dryRun) {
        const sample: Sample[] = [];
        for (const id of ids.slice(0, SAMPLE_SIZE)) {
          const { attempts: _, ...d } = await getDelivery(conn, ADMIN, id);
          sample.push(d);
        }
        summary.circuits = await circuits();
        for (const c of summary.circuits) out.notice(c.message);
        out.result({ ...summary, sample }, () => {
          out.say(`${ids.length} ${opts.status} deliveries would be replayed${ids.length > SAMPLE_SIZE ? `; the first ${SAMPLE_SIZE}` : ""}:`);
          out.say(renderTable(sample, sampleColumns));
        });
        return;
      }

      if (!opts.yes) {
        if (!cli.tty.stdin) {
          throw new DomainError(
            "invalid_input",
            `--yes: ${ids.length} ${opts.status} deliveries match; refusing to replay them without --yes when stdin is not a terminal (try --dry-run to look first)`,
          );
        }
        const rate = opts.rate ? ` at ${opts.rate}/s` : "";
        if (!(await confirm(`Replay ${ids.length} ${opts.status} deliveries${rate}? [y/N] `))) {
          throw new Error("not confirmed; nothing was replayed");
        }
      }

      if ((await listDispatchers(conn)).length === 0) {
        out.notice("warning: no dispatcher is running; the replayed deliveries are sent once `pg-webhooks start` runs");
      }

      const { SingleBar, Presets } = await import("cli-progress"); // only replays draw a bar
      const bar = cli.tty.stderr && !opts.json ? new SingleBar({ stream: process.stderr, hideCursor: true }, Presets.shades_classic) : null;
      bar?.start(ids.length, 0);
      try {
        summary.queued = await queueReplayPaced(conn, ids, { ratePerS: opts.rate, onProgress: (done) => bar?.update(done) });
      } finally {
        bar?.stop();
      }
      summary.skipped = ids.length - summary.queued;
      await finish();
    }),
  );
}
