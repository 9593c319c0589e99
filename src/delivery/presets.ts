// The payload presets other than the standard body (render.ts): the bodies the integration
// guides expect (classic), Standard Webhooks' thin payload, and chat messages for Slack and
// Discord. Written as code, not as JSONata: they run for every delivery (bench/render.ts).
import { ExactNumber } from "./event-json";

/** A tenant's record as bodies show it (webhooks.tenants, or the app's table or view). */
export interface Organization {
  id: string;
  name: string | null;
  slug: string | null;
  metadata: unknown;
}

/** An event parsed once for rendering (numbers exact), with what the webhook and delivery add. */
export interface RenderInput {
  id: string;
  type: string;
  timestamp: string;
  data: unknown;
  /** Null when the event has none (created, deleted, most custom events). */
  previous_attributes: Record<string, unknown> | null;
  tenant: string | null;
  webhook: { id: string; name: string | null };
  deliveryId: string;
  organization: Organization | null;
  /** The source table's primary key columns; null when unknown (a custom event, a table without one). */
  primaryKey: string[] | null;
}

const asObject = (v: unknown): Record<string, unknown> | null =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof ExactNumber) ? (v as Record<string, unknown>) : null;

/** The new values of the changed columns: previous_attributes' keys with their values in data. */
export function changesOf(data: unknown, previous: Record<string, unknown> | null): Record<string, unknown> {
  const d = asObject(data);
  const out: Record<string, unknown> = {};
  if (previous === null) return out;
  for (const k of Object.keys(previous)) out[k] = d?.[k] ?? null;
  return out;
}

/** The row's key: its primary key columns, else its id column, else nothing. */
export function keyOf(data: unknown, primaryKey: string[] | null): Record<string, unknown> {
  const d = asObject(data);
  if (d === null) return {};
  const cols = primaryKey !== null && primaryKey.length > 0 ? primaryKey : "id" in d ? ["id"] : [];
  const out: Record<string, unknown> = {};
  for (const c of cols) if (c in d) out[c] = d[c];
  return out;
}

export function classicBody(e: RenderInput): Record<string, unknown> {
  const org = e.organization;
  return {
    event: e.type,
    timestamp: e.timestamp,
    data: e.data,
    changes: changesOf(e.data, e.previous_attributes),
    organization: org === null ? null : { id: org.id, name: org.name, slug: org.slug },
    metadata: { webhook_id: e.webhook.id, webhook_name: e.webhook.name, delivery_id: e.deliveryId, event_id: e.id },
  };
}

/** Standard Webhooks' thin payload: the receiver fetches the rest by the key. */
export function thinBody(e: RenderInput): Record<string, unknown> {
  return { id: e.id, type: e.type, timestamp: e.timestamp, data: keyOf(e.data, e.primaryKey) };
}

/** `s` cut to at most `max` UTF-16 units ending with …, never between the halves of a surrogate pair. */
function cut(s: string, max: number): string {
  if (s.length <= max) return s;
  let head = s.slice(0, max - 1);
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  return `${head}…`;
}

/** One value as a summary shows it: on one line, at most `max` characters. */
function shown(v: unknown, max = 60): string {
  let s: string;
  if (v instanceof ExactNumber) s = v.digits;
  else if (typeof v === "string") s = v;
  else if (v === undefined) s = "null";
  else s = JSON.stringify(v) ?? "null";
  return cut(s.replace(/\s+/g, " "), max);
}

/**
 * A readable one-line summary: the type, the row's key, and what changed (or a few fields).
 * `bold` wraps the type in the chat's markup.
 */
export function summaryLine(e: RenderInput, bold: (s: string) => string, max: number): string {
  const key = keyOf(e.data, e.primaryKey);
  const keyText = Object.entries(key).map(([k, v]) => `${k} ${shown(v, 40)}`).join(", ");
  let detail: string;
  if (e.previous_attributes !== null) {
    const data = asObject(e.data);
    detail = Object.entries(e.previous_attributes)
      .map(([k, old]) => `${k}: ${shown(old)} → ${shown(data?.[k])}`)
      .join("; ");
  } else {
    const data = asObject(e.data);
    detail = data === null ? shown(e.data) : Object.entries(data).filter(([k]) => !(k in key)).slice(0, 4).map(([k, v]) => `${k}: ${shown(v, 40)}`).join("; ");
  }
  const line = [bold(e.type), keyText, detail].filter((s) => s !== "").join(" · ");
  return cut(line, max);
}

// Slack reads &, < and > as markup (links, mentions): escaped, they stay text.
const slackEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function slackBody(e: RenderInput): Record<string, unknown> {
  return { text: slackEscape(summaryLine(e, (t) => `*${t}*`, 3000)) };
}

/** Discord's content holds at most 2,000 characters; allowed_mentions keeps @everyone in data from pinging anyone. */
export const DISCORD_MAX_CONTENT = 2000;

export function discordBody(e: RenderInput): Record<string, unknown> {
  return { content: summaryLine(e, (t) => `**${t}**`, DISCORD_MAX_CONTENT), allowed_mentions: { parse: [] } };
}
