// The environment, parsed once at start-up. Nothing else reads process.env. The schema is the
// one home of every default; DEFAULTS holds them parsed, for code that needs one without a Config.
import { z } from "zod";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no", ""])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const ms = (def: number) =>
  z.coerce.number().int().positive().default(def);

export const configSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "expected a postgres:// or postgresql:// URL")
    .optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default("0.0.0.0"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  WEBHOOKS_ALLOW_PRIVATE_TARGETS: bool.default(false),
  /** The admin UI at /admin, served with the API: off for API-only deployments (or `start --no-admin`). */
  WEBHOOKS_ADMIN: z
    .enum(["on", "off", "true", "false", "1", "0", "yes", "no"], { error: "expected on or off" })
    .transform((v) => v === "on" || v === "true" || v === "1" || v === "yes")
    .default(true),
  /**
   * The most database connections one `pg-webhooks start` process opens, all pools included
   * (see connectionBudget in src/db/budget.ts for the split). One-shot commands open up to 4.
   */
  WEBHOOKS_DB_POOL_SIZE: z.coerce.number().int().min(4).max(1000).default(20),
  /** Deliver jobs (each claims a batch of deliveries into the lanes) one dispatcher runs at once. */
  WEBHOOKS_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(10),
  /** Poll for undispatched events this often even without a NOTIFY. */
  WEBHOOKS_POLL_INTERVAL_MS: ms(1000),
  /** A dispatcher silent for this long is presumed dead and its jobs are released. */
  WEBHOOKS_DISPATCHER_TIMEOUT_MS: ms(30000),
  /** On SIGTERM, in-flight requests get this long to finish. */
  WEBHOOKS_SHUTDOWN_GRACE_MS: ms(10000),
  /** Consecutive failed attempts to one webhook that open its circuit. */
  WEBHOOKS_BREAKER_THRESHOLD: z.coerce.number().int().min(1).max(1000).default(10),
  /** While a circuit is open, probes go out after this long, doubling each time ... */
  WEBHOOKS_BREAKER_PROBE_MIN_MS: ms(30000),
  /** ... up to this interval. */
  WEBHOOKS_BREAKER_PROBE_MAX_MS: ms(600000),
  /** A webhook whose every attempt has failed for this long is disabled (per-webhook disable_after_s overrides). */
  WEBHOOKS_DISABLE_AFTER_S: z.coerce.number().int().min(1).default(5 * 24 * 3600),
});

export type Config = z.infer<typeof configSchema>;

/** Every setting at its default: the one home of default values (the breaker's included). */
export const DEFAULTS: Config = configSchema.parse({});

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Returns a typed config or throws one message naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") cleaned[key] = value;
  }
  const result = configSchema.safeParse(cleaned);
  if (!result.success) {
    const lines = result.error.issues.map((i) => {
      const name = String(i.path[0] ?? "environment");
      return `  ${name}: ${i.message} (got ${JSON.stringify(cleaned[name])})`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return result.data;
}
