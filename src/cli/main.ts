// The `pg-webhooks` program: one commander command group per file, and the one place that
// turns errors into messages and exit codes (0 done, 1 the operation failed, 2 usage error).
import { Command, CommanderError } from "commander";
import { DomainError, coerceError } from "../errors";
import { createCli, type Cli } from "./context";
import { fromPostgresError } from "../db/errors";
import { registerMigrate } from "./migrate";
import { registerStart } from "./start";
import { registerTracking } from "./tracking";
import { registerRules } from "./rules";
import { registerWebhooks } from "./webhooks";
import { registerEventTypes } from "./event-types";
import { registerDeliveries } from "./deliveries";
import { registerReplay } from "./replay";
import { registerBackfill } from "./backfill";
import { registerKeys } from "./keys";
import { registerPrune } from "./prune";
import { registerStatus } from "./status";
import { registerInbound } from "./inbound";

const { version } = require("../../package.json") as { version: string };

export function buildProgram(cli: Cli): Command {
  const program = new Command("pg-webhooks");
  program
    .description("Outgoing webhooks for applications that write straight to Postgres.")
    .version(version, "-V, --version")
    // Inherited by every subcommand added below: errors come back to main() as exceptions.
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .configureHelp({ sortSubcommands: false });
  program.addHelpText(
    "after",
    `
Environment: DATABASE_URL (unset: an embedded Postgres under ./.pg-webhooks), PORT, HOST,
LOG_LEVEL, WEBHOOKS_ALLOW_PRIVATE_TARGETS, WEBHOOKS_DB_POOL_SIZE.

Example:
  $ pg-webhooks start
  $ pg-webhooks track public.clients
  $ pg-webhooks webhooks create --url https://example.com/hook --events 'clients.*'
`,
  );
  registerMigrate(program, cli);
  registerStart(program, cli);
  registerTracking(program, cli);
  registerRules(program, cli);
  registerWebhooks(program, cli);
  registerEventTypes(program, cli);
  registerDeliveries(program, cli);
  registerReplay(program, cli);
  registerBackfill(program, cli);
  registerKeys(program, cli);
  registerPrune(program, cli);
  registerStatus(program, cli);
  registerInbound(program, cli);
  return program;
}

/** Prints what went wrong on stderr and returns the exit code. */
export function reportError(
  e: unknown,
  debug = false,
  write: (s: string) => void = (s) => process.stderr.write(s),
  poolSize?: number,
): number {
  if (e instanceof CommanderError) {
    // commander has already printed its message (naming the flag).
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0) return 0;
    return 2;
  }
  // By name: the config module (zod) is loaded only when a command runs.
  if (e instanceof Error && e.name === "ConfigError") {
    write(`error: ${e.message}\n`);
    return 2;
  }
  const domain = e instanceof DomainError ? e : fromPostgresError(e, poolSize === undefined ? {} : { poolSize });
  if (domain) {
    write(`error: ${domain.message}\n`);
    for (const d of domain.details) {
      if (!domain.message.includes(d.message)) write(`  ${d.path}: ${d.message}\n`);
    }
    if (domain.hint !== undefined) write(`  ${domain.hint}\n`);
    else if (debug && domain !== e && e instanceof Error && e.stack) write(`${e.stack}\n`);
    return domain.exitCode;
  }
  write(`error: ${coerceError(e).message}\n`);
  if (debug && e instanceof Error && e.stack) write(`${e.stack}\n`);
  return 1;
}

/**
 * A reader that stops early (`pg-webhooks status | head -1`) is not an error: writes to a
 * closed stdout or stderr are dropped, the command finishes what it was doing and exits with
 * its usual code (0 when it succeeded), as `git log | head` does. Any other stream error still
 * ends the process.
 */
export function ignoreClosedPipes(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  ignoreClosedPipes();
  const cli = createCli(process.env);
  const program = buildProgram(cli);
  let code = 0;
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const poolSize = await cli.config().then((c) => c.WEBHOOKS_DB_POOL_SIZE, () => undefined);
    code = reportError(e, cli.env.PGW_DEBUG === "1", undefined, poolSize);
  }
  // A command may have set 1 itself after printing its result (a test send that failed).
  if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  const final = process.exitCode;
  // A one-shot command has closed everything it opened; this only guards against a
  // stray handle keeping a finished command alive. (`start` returns only once stopped.)
  setTimeout(() => process.exit(final), 3000).unref();
}
