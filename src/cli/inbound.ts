// `pg-webhooks inbound create|list|show|update|delete` (inbound sources) and `inbound events
// list|show|replay`. Flags map onto the HTTP API's fields and go through the same zod schemas
// and service functions; secrets go in and are never printed (a generated one, once).
import type { Command } from "commander";
import type { Config } from "../config";
import { INBOUND_SCHEMES, INBOUND_STATUSES, type InboundStatus, type SourceView } from "../model/inbound";
import { parseInput } from "../model/validation";
import type { InboundEventView } from "../services/inbound-events";
import { ADMIN } from "../services/scope";
import type { Cli } from "./context";
import { collect, common, integer, jsonObject, list, oneOf, positiveNumber, when, withFlagNames, type CommonOptions } from "./options";
import type { Column } from "./output";

const sources = () => import("../services/inbound-sources.js");
const events = () => import("../services/inbound-events.js");
const model = () => import("../model/inbound.js");

const FLAGS: Record<string, string> = {
  slug: "--slug",
  verify: "--verify",
  secrets: "--secret",
  name: "--name",
  tenant: "--tenant",
  enabled: "--disabled/--enable",
  hmac: "--hmac",
  key_header: "--key-header",
  tolerance_s: "--tolerance",
  dedupe: "--dedupe",
  allowed_tenants: "--allowed-tenants",
  max_body_bytes: "--max-body-bytes",
  rate_limit_per_s: "--rate-limit",
  relay_prefix: "--relay",
};

interface SourceFlags extends CommonOptions {
  slug?: string;
  verify?: string;
  secret?: string[];
  name?: string;
  tenant?: string;
  disabled?: boolean;
  enable?: boolean;
  hmac?: Record<string, unknown>;
  keyHeader?: string;
  tolerance?: number;
  dedupe?: string;
  allowedTenants?: string[];
  maxBodyBytes?: number;
  rateLimit?: number;
  noRateLimit?: boolean;
  relay?: string;
  noRelay?: boolean;
}

function sourceOptions(cmd: Command, create: boolean): Command {
  if (create) {
    cmd
      .requiredOption("--slug <slug>", "the URL slug: senders POST to /in/<slug>")
      .requiredOption("--verify <scheme>", `how requests are verified: ${INBOUND_SCHEMES.join(", ")}`, oneOf(INBOUND_SCHEMES))
      .option("--tenant <tenant>", "the tenant the source's events belong to");
  } else {
    cmd.option("--slug <slug>", "a new slug (the old URL stops working)").option("--enable", "accept requests again");
  }
  return cmd
    .option("--secret <secret>", "the secret or key (repeat for two during rotation: new first); generated for standard, api_key and hmac when left out", collect)
    .option("--name <name>", "a label")
    .option("--disabled", "refuse requests (404) until enabled")
    .option("--hmac <json>", 'verify hmac: {"header": "X-Signature", "prefix": "sha256=", "encoding": "hex", "signed": "body"}', jsonObject)
    .option("--key-header <name>", "verify api_key: the header carrying the key (default X-API-Key)")
    .option("--tolerance <seconds>", "timestamps older or newer than this are refused (default 300)", integer(1, 86400))
    .option("--dedupe <spec>", "where the sender's id is: header:<name>, json:<path> or none (default: the scheme's)")
    .option("--allowed-tenants <list>", "a source without tenant: X-Tenant-ID must be one of these (comma-separated)", list)
    .option("--max-body-bytes <n>", "larger bodies get 413 (default 1048576)", integer(1, 16 * 1024 * 1024))
    .option("--rate-limit <per-second>", "requests per second per server process; more get 429", positiveNumber)
    .option("--relay <prefix>", "relay events into the outbound pipeline as <prefix>.<event name>, e.g. inbound.stripe")
    .option("--no-relay", "stop relaying")
    .option("--no-rate-limit", "remove the rate limit");
}

function rawInput(opts: SourceFlags, create: boolean): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  if (opts.slug !== undefined) raw.slug = opts.slug;
  if (create) raw.verify = opts.verify;
  if (opts.tenant !== undefined) raw.tenant = opts.tenant;
  if (opts.secret !== undefined) raw.secrets = opts.secret;
  if (opts.name !== undefined) raw.name = opts.name;
  if (opts.disabled) raw.enabled = false;
  else if (opts.enable) raw.enabled = true;
  if (opts.hmac !== undefined) raw.hmac = opts.hmac;
  if (opts.keyHeader !== undefined) raw.key_header = opts.keyHeader;
  if (opts.tolerance !== undefined) raw.tolerance_s = opts.tolerance;
  if (opts.dedupe !== undefined) raw.dedupe = opts.dedupe;
  if (opts.allowedTenants !== undefined) raw.allowed_tenants = opts.allowedTenants;
  if (opts.maxBodyBytes !== undefined) raw.max_body_bytes = opts.maxBodyBytes;
  // commander: --no-relay sets relay to false; --rate-limit / --no-rate-limit likewise.
  const relay = opts.relay as unknown;
  if (typeof relay === "string") raw.relay_prefix = relay;
  else if (relay === false && !create) raw.relay_prefix = null;
  const rate = opts.rateLimit as unknown;
  if (typeof rate === "number") raw.rate_limit_per_s = rate;
  else if (rate === false && !create) raw.rate_limit_per_s = null;
  return raw;
}

/** Where senders post: this server's address as configured (put your public address in front). */
const urlOf = (config: Config, slug: string) => `http://${config.HOST === "0.0.0.0" || config.HOST === "::" ? "localhost" : config.HOST}:${config.PORT}/in/${slug}`;

function sourceFields(s: SourceView, config: Config): [string, unknown][] {
  return [
    ["id", s.id],
    ["slug", s.slug],
    ["url", urlOf(config, s.slug)],
    ["name", s.name],
    ["tenant", s.tenant],
    ["enabled", s.enabled],
    ["verify", s.verify],
    ["secrets", s.secrets_set === 0 ? "none" : `${s.secrets_set} set (${s.secret_hints.join(", ")})`],
    ["key header", s.verify === "api_key" ? (s.key_header ?? "x-api-key") : null],
    ["hmac", s.hmac],
    ["tolerance", `${s.tolerance_s}s`],
    ["dedupe", s.dedupe_effective ?? "none"],
    ["allowed tenants", s.allowed_tenants],
    ["max body", `${s.max_body_bytes} bytes`],
    ["rate limit", s.rate_limit_per_s === null ? null : `${s.rate_limit_per_s}/s`],
    ["relay", s.relay_prefix === null ? null : `${s.relay_prefix}.<event name>`],
    ["created", s.created_at],
  ];
}

const sourceColumns: Column<SourceView>[] = [
  { header: "id", value: (s) => s.id },
  { header: "slug", value: (s) => s.slug },
  { header: "verify", value: (s) => s.verify },
  { header: "tenant", value: (s) => s.tenant },
  { header: "enabled", value: (s) => s.enabled },
  { header: "secrets", value: (s) => s.secrets_set },
  { header: "relay", value: (s) => s.relay_prefix },
  { header: "name", value: (s) => s.name, max: 30 },
];

const eventColumns: Column<InboundEventView>[] = [
  { header: "id", value: (e) => e.id },
  { header: "source", value: (e) => e.source_slug },
  { header: "event", value: (e) => e.event_name, max: 40 },
  { header: "tenant", value: (e) => e.tenant },
  { header: "status", value: (e) => e.status },
  { header: "attempts", value: (e) => e.attempts },
  { header: "bytes", value: (e) => e.body_bytes },
  { header: "received", value: (e) => e.received_at },
  { header: "error", value: (e) => e.last_error, max: 40 },
];

interface EventFlags extends CommonOptions {
  source?: string;
  status?: InboundStatus;
  event?: string;
  tenant?: string;
  since?: Date;
  until?: Date;
  limit?: number;
  id?: string[];
}

function eventFilterOptions(cmd: Command): Command {
  return cmd
    .option("--source <slug>", "only this source's events")
    .option("--status <status>", `only ${INBOUND_STATUSES.join(", ")}`, oneOf(INBOUND_STATUSES))
    .option("--event <name>", "an event name, or a prefix ending in * (contact.*)")
    .option("--tenant <tenant>", "only this tenant's events")
    .option("--since <when>", "received at or after: a duration ago (2h) or an ISO timestamp", when)
    .option("--until <when>", "received before: a duration ago (30m) or an ISO timestamp", when);
}

const filtersOf = (o: EventFlags) => ({ source: o.source, status: o.status, event: o.event, tenant: o.tenant, since: o.since, until: o.until });

export function registerInbound(program: Command, cli: Cli): void {
  const inbound = program.command("inbound").description("receive other systems' webhooks: inbound sources and their events");
  inbound.addHelpText(
    "after",
    "\nExamples:\n  $ pg-webhooks inbound create --slug crm --verify api_key --secret KEY --allowed-tenants acme,globex\n" +
      "  $ pg-webhooks inbound create --slug billing --verify standard --secret whsec_…\n" +
      "  $ pg-webhooks inbound events list --source crm --status pending\n",
  );

  common(
    sourceOptions(inbound.command("create").description("create an inbound source and print its URL"), true),
    "pg-webhooks inbound create --slug crm --verify api_key --secret KEY",
    "pg-webhooks inbound create --slug stripe --verify stripe --secret whsec_… --relay inbound.stripe",
  ).action((opts: SourceFlags) =>
    cli.run(opts, async ({ conn, out, config }) => {
      const { sourceCreateSchema } = await model();
      const { createSource } = await sources();
      let r;
      try {
        r = await createSource(conn, ADMIN, parseInput(sourceCreateSchema, rawInput(opts, true)));
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      const { source, secret } = r;
      out.object({ ...source, url: urlOf(config, source.slug), secret }, [...sourceFields(source, config), ...(secret === null ? [] : [["secret", secret] as [string, unknown]])]);
      if (secret !== null) out.notice("The secret was generated: give it to the sender now; it is not shown again.");
    }),
  );

  common(
    inbound
      .command("list")
      .description("list inbound sources (never their secrets)")
      .option("--limit <n>", "at most this many", integer(1, 1000)),
    "pg-webhooks inbound list",
  ).action((opts: CommonOptions & { limit?: number }) =>
    cli.run(opts, async ({ conn, out }) => {
      const { listSources } = await sources();
      const page = await listSources(conn, ADMIN, { limit: opts.limit ?? 1000 });
      out.list(page.items, sourceColumns, { empty: "No inbound sources. Create one with: pg-webhooks inbound create --slug crm --verify api_key" });
    }),
  );

  common(inbound.command("show").description("show an inbound source (never its secrets)").argument("<source>", "id or slug"), "pg-webhooks inbound show crm").action(
    (idOrSlug: string, opts: CommonOptions) =>
      cli.run(opts, async ({ conn, out, config }) => {
        const { getSource } = await sources();
        const s = await getSource(conn, ADMIN, idOrSlug);
        out.object({ ...s, url: urlOf(config, s.slug) }, sourceFields(s, config));
      }),
  );

  common(
    sourceOptions(inbound.command("update").description("change an inbound source; only the flags given change").argument("<source>", "id or slug"), false),
    "pg-webhooks inbound update crm --secret NEWKEY --secret OLDKEY",
    "pg-webhooks inbound update stripe --no-relay",
  ).action((idOrSlug: string, opts: SourceFlags) =>
    cli.run(opts, async ({ conn, out, config }) => {
      const { sourcePatchSchema } = await model();
      const { updateSource } = await sources();
      let s;
      try {
        s = await updateSource(conn, ADMIN, idOrSlug, parseInput(sourcePatchSchema, rawInput(opts, false)));
      } catch (e) {
        throw withFlagNames(e, FLAGS);
      }
      out.object({ ...s, url: urlOf(config, s.slug) }, sourceFields(s, config));
    }),
  );

  common(inbound.command("delete").description("delete an inbound source (its URL answers 404; its events stay until pruned)").argument("<source>", "id or slug"), "pg-webhooks inbound delete crm").action(
    (idOrSlug: string, opts: CommonOptions) =>
      cli.run(opts, async ({ conn, out }) => {
        const { deleteSource } = await sources();
        await deleteSource(conn, ADMIN, idOrSlug);
        out.result({ deleted: idOrSlug }, () => out.say(`Deleted inbound source ${idOrSlug}.`));
      }),
  );

  const ev = inbound.command("events").description("inbound events: list, show, replay");

  common(
    eventFilterOptions(ev.command("list").description("inbound events, newest first")).option("--limit <n>", "at most this many (default 50)", integer(1, 1000)),
    "pg-webhooks inbound events list --source crm --status failed --since 2h",
  ).action((opts: EventFlags) =>
    cli.run(opts, async ({ conn, out }) => {
      const { listInboundEvents } = await events();
      const page = await listInboundEvents(conn, ADMIN, { ...filtersOf(opts), limit: opts.limit ?? 50 });
      out.list(page.items, eventColumns, { empty: "No inbound events match." });
    }),
  );

  common(ev.command("show").description("one inbound event with its headers and body").argument("<id>", "event id"), "pg-webhooks inbound events show 42").action(
    (id: string, opts: CommonOptions) =>
      cli.run(opts, async ({ conn, out }) => {
        const { getInboundEvent } = await events();
        const e = await getInboundEvent(conn, ADMIN, id.trim());
        out.object(e, [
          ["id", e.id],
          ["source", e.source_slug],
          ["event", e.event_name],
          ["tenant", e.tenant],
          ["status", e.status],
          ["attempts", e.attempts],
          ["error", e.last_error],
          ["dedupe key", e.dedupe_key],
          ["relayed as", e.relayed_event_id],
          ["received", e.received_at],
          ["processed", e.processed_at],
          ["headers", e.headers],
          ["body", e.body_text ?? `(not UTF-8; base64) ${e.body}`],
        ]);
      }),
  );

  common(
    eventFilterOptions(ev.command("replay").description("process events again: back to pending, or relayed again for relaying sources (default: failed ones; --id replays those events whatever their status)"))
      .option("--id <ids>", "these event ids (comma-separated, repeatable)", list),
    "pg-webhooks inbound events replay --source crm --status failed",
    "pg-webhooks inbound events replay --id 41,42",
  ).action((opts: EventFlags) =>
    cli.run(opts, async ({ conn, out }) => {
      const { replayInboundEvents, replaySummary } = await events();
      const r = await replayInboundEvents(conn, ADMIN, { ...filtersOf(opts), ids: opts.id });
      out.result(r, () => out.say(replaySummary(r)));
    }),
  );
}
