// Secret rotation: what a rotate-secret request takes and answers, and what receivers see
// while the old secret still signs (the signing rule itself is signingSecrets() in delivery/sign.ts).
import { z } from "zod";
import type { SignatureScheme } from "./enums";
import { strictObject } from "./validation";

export const DEFAULT_ROTATION_GRACE_MS = 24 * 60 * 60 * 1000;
export const MAX_ROTATION_GRACE_MS = 30 * 24 * 60 * 60 * 1000;

const GRACE_MESSAGE = `expected milliseconds from 0 to ${MAX_ROTATION_GRACE_MS} (30 days)`;
export const SWITCH_AT_MESSAGE = "expected an ISO timestamp with a time zone within the next 30 days, written YYYY-MM-DDTHH:MM:SSZ or with an offset such as +01:00";

/** Date.parse rolls 2024-02-30 over to March 1; a switch-over instant must name a real day. */
function isCalendarDate(iso: string): boolean {
  const [y, m, d] = iso.slice(0, 10).split("-").map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

export const rotateSecretSchema = strictObject({
  grace_ms: z
    .number({ error: GRACE_MESSAGE })
    .int({ error: GRACE_MESSAGE })
    .min(0, { error: GRACE_MESSAGE })
    .max(MAX_ROTATION_GRACE_MS, { error: GRACE_MESSAGE })
    .optional()
    .meta({
      description:
        "How long the old secret keeps signing (default 24 h): standard alongside the new one; hex and sha256 alone, " +
        "until the new one takes over when it ends. 0: the new secret signs alone from now on.",
    }),
  switch_at: z
    .string({ error: SWITCH_AT_MESSAGE })
    .max(64, { error: SWITCH_AT_MESSAGE })
    .pipe(z.iso.datetime({ offset: true, error: SWITCH_AT_MESSAGE }))
    .refine(isCalendarDate, { error: SWITCH_AT_MESSAGE })
    .optional()
    .meta({ description: "Instead of grace_ms: the instant the old secret stops signing (within the next 30 days)." }),
})
  .refine((r) => r.grace_ms === undefined || r.switch_at === undefined, {
    path: ["switch_at"],
    error: "give grace_ms or switch_at, not both",
  })
  .meta({ id: "RotateSecret" });

export const rotatedSecretSchema = z.object({
  id: z.uuid(),
  secret: z.string().meta({ description: "The new signing secret (ed25519: the new private signing key, whsk_…)." }),
  public_key: z
    .string()
    .nullable()
    .meta({ description: "ed25519 only: the new public key (whpk_…) to give receivers; null for the other schemes." }),
  previous_secret_expires_at: z
    .date()
    .nullable()
    .meta({ description: "When the old secret stops signing (null: it already has). See receivers_see." }),
  receivers_see: z.string().meta({ description: "What a receiver holding the old secret, and one holding the new, gets and when." }),
});

export type RotatedSecret = z.output<typeof rotatedSecretSchema>;
/**
 * What receivers see while the old secret still signs (until `until`), for the webhook's scheme;
 * the rule itself is signingSecrets() in delivery/sign.ts. Null when no rotation is in progress.
 */
export function rotationSummary(scheme: SignatureScheme, until: Date | null, now = new Date()): string | null {
  if (until === null || until.getTime() <= now.getTime()) return null;
  const at = until.toISOString();
  if (scheme === "ed25519") {
    return (
      `until ${at} every request carries two v1a signatures, one made with the new signing key and one with the old: ` +
      "receivers holding either public key verify. From then on only the new key signs; give receivers the new public key before then."
    );
  }
  return scheme === "standard"
    ? `until ${at} every request carries two signatures, one made with the new secret and one with the old: ` +
        "receivers holding either verify. From then on only the new secret signs."
    : `until ${at} requests are signed with the old secret alone; from ${at} on with the new secret alone ` +
        `(${scheme} carries one signature). A receiver holding only the old secret rejects requests from then on; ` +
        "one holding only the new secret rejects them until then. Switch receivers at that instant, or let them accept either meanwhile.";
}

export const SWITCHED_NOW = "the new secret signs every request from now on: receivers still holding the old secret reject them.";
