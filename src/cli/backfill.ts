// `pg-webhooks backfill <webhook> --table …`: sends a tracked table's existing rows to one
// webhook (the dispatcher runs it; this follows it with a progress bar), and `pg-webhooks
// backfills …` to list, show, pause, resume and cancel them. Both go through services/backfills.ts.
import type { Command } from "commander";
import type { BackfillView } from "../model/backfill";
import { ADMIN } from "../services/scope";
import type { Cli } from "./context";
import { common, positiveNumber, uuid, withFlagNames, type CommonOptions } from "./options";
import { renderFields, type Column } from "./output";

const service = () => import("../services/backfills.js");

/** How often a followed backfill's progress is read. */
const FOLLOW_POLL_MS = 500;

interface BackfillOptions extends CommonOptions {
  table: string;
  where?: string;
  rate?: number;
  dryRun?: boolean;
  wait: boolean;
}

function fields(b: BackfillView): [string, unknown][] {
  return [
    ["id", b.id],
    ["webhook", b.webhook_id],
    ["table", b.table],
    ["event type", b.event_type],
    ["where", b.where ?? "(every row)"],
    ["rate", b.rate_per_s === null ? "no limit" : `${b.rate_per_s} rows/s`],
    ["state", b.error ? `${b.state} (${b.error})` : b.state],
    ["rows", `${b.rows_sent} sent of ${b.rows_total ?? "?"}`],
    ["last key", b.cursor === null ? "(none yet)" : `${b.key_columns.join(", ")} = ${b.cursor.join(", ")}`],
    ["created", b.created_at],
    ["finished", b.finished_at],
  ];
}

const columns: Column<BackfillView>[] = [
  { header: "id", value: (b) => b.id },
  { header: "table", value: (b) => b.table, max: 32 },
  { header: "state", value: (b) => b.state },
  { header: "sent", value: (b) => b.rows_sent },
  { header: "total", value: (b) => b.rows_total },
  { header: "created", value: (b) => b.created_at },
];

const FLAGS = { table: "--table", where: "--where", rate: "--rate" };

export function registerBackfill(program: Command, cli: Cli): void {
  common(
    program
      .command("backfill")
      .description("send the existing rows of a tracked table to one webhook, once (as <prefix>.backfill events, in key order)")
      .argument("<webhook>", "webhook id", uuid)
      .requiredOption("--table <table>", "the tracked table, such as public.clients")
      .option("--where <sql>", "only rows matching this SQL condition, such as \"status = 'active'\" (one expression; no ; or comments)")
      .option("--rate <n>", "at most n rows per second", positiveNumber)
      .option("--dry-run", "print how many rows would be sent; start nothing")
      .option("--no-wait", "start it and return; the dispatcher sends it (follow it with pg-webhooks backfills show)"),
    "pg-webhooks backfill 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --table public.clients --dry-run",
    "pg-webhooks backfill 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f --table public.clients --where \"status = 'active'\" --rate 200",
  ).action((webhook: string, opts: BackfillOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { countBackfill, startBackfill, getBackfill } = await service();
      const { listDispatchers } = await import("../services/status.js");
      const input = { table: opts.table, where: opts.where, rate: opts.rate };
      let b: Awaited<ReturnType<typeof startBackfill>>;
      try {
        if (opts.dryRun) {
          const c = await countBackfill(conn, ADMIN, webhook, input);
          out.result(c, () => out.say(`${c.rows} rows of ${c.table} would be sent to webhook ${webhook} as ${c.event_type} events.`));
          return;
        }
        b = await startBackfill(conn, ADMIN, webhook, input);
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      if ((await listDispatchers(conn)).length === 0) {
        out.notice("warning: no dispatcher is running; the backfill starts once `pg-webhooks start` runs");
      }
      if (!opts.wait) {
        out.result(b, () => out.say(renderFields(fields(b))));
        return;
      }
      out.notice(`Backfill ${b.id} started; Ctrl-C stops following it (the dispatcher carries on: pg-webhooks backfills cancel ${b.id}).`);
      const { SingleBar, Presets } = await import("cli-progress");
      const bar = cli.tty.stderr && !opts.json ? new SingleBar({ stream: process.stderr, hideCursor: true }, Presets.shades_classic) : null;
      bar?.start(b.rows_total ?? 0, 0);
      try {
        while (b.state === "running") {
          await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
          b = await getBackfill(conn, ADMIN, webhook, b.id);
          if (b.rows_total !== null && b.rows_sent > b.rows_total) bar?.setTotal(b.rows_sent);
          bar?.update(b.rows_sent);
        }
      } finally {
        bar?.stop();
      }
      out.result(b, () => out.say(renderFields(fields(b))));
      if (b.state !== "done") process.exitCode = 1;
    }),
  );

  const backfills = program.command("backfills").description("list, show, pause, resume and cancel backfills");
  common(
    backfills.command("list").description("a webhook's backfills, newest first").argument("<webhook>", "webhook id", uuid),
    "pg-webhooks backfills list 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f",
  ).action((webhook: string, opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { listBackfills } = await service();
      out.list(await listBackfills(conn, ADMIN, webhook), columns, { empty: "No backfills for this webhook." });
    }),
  );
  for (const verb of ["show", "pause", "resume", "cancel"] as const) {
    common(
      backfills
        .command(verb)
        .description(
          verb === "show"
            ? "a backfill's progress"
            : verb === "pause"
              ? "stop a running backfill after its current batch (resume continues)"
              : verb === "resume"
                ? "continue a paused or failed backfill after the last row it sent"
                : "stop a backfill for good (events already written still go out)",
        )
        .argument("<id>", "backfill id", uuid),
      `pg-webhooks backfills ${verb} 6a1e0c9e-2f1d-4c55-9b1e-0d8c3f2a1b7e`,
    ).action((id: string, opts: CommonOptions) =>
      cli.run(opts, async ({ conn, out }) => {
        const { changeBackfill, getBackfill, webhookOfBackfill } = await service();
        const webhook = await webhookOfBackfill(conn, ADMIN, id);
        const b = verb === "show" ? await getBackfill(conn, ADMIN, webhook, id) : await changeBackfill(conn, ADMIN, webhook, id, verb);
        out.result(b, () => out.say(renderFields(fields(b))));
      }),
    );
  }
}
