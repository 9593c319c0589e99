// What every command action gets: the parsed config, an Output, and (for one-shot commands)
// a core (src/core.ts) whose close() runs when the action ends: the pool, anything the action
// deferred or made (the sender of `webhooks test`), then any embedded Postgres it started.
// Config (zod) and the database drivers load only once an action runs: `--help` and usage
// errors never pay for them.
import type { Config } from "../config";
import type { Core } from "../core";
import type { Connection } from "../db/connection";
import type { ResolvedDatabase } from "./database";
import type { CommonOptions } from "./options";
import { Output } from "./output";

export interface RunContext {
  core: Core;
  /** core.conn */
  conn: Connection;
  out: Output;
  config: Config;
  db: ResolvedDatabase;
}

export interface Cli {
  /** The environment main() was given (the only place it is read). */
  env: Record<string, string | undefined>;
  /** Parsed on first use, so `--help` works even with a bad environment. */
  config(): Promise<Config>;
  output(opts: CommonOptions): Output;
  /** Runs a one-shot command against the database. */
  run(opts: CommonOptions, fn: (ctx: RunContext) => Promise<void>, runOpts?: { autoMigrate?: boolean }): Promise<void>;
  /** Whether stdin / stderr are terminals (prompts, progress bars). */
  tty: { stdin: boolean; stderr: boolean };
}

export function createCli(env: Record<string, string | undefined>): Cli {
  let config: Config | undefined;
  const cli: Cli = {
    env,
    async config() {
      if (config === undefined) {
        const { loadConfig } = await import("../config/index.js");
        config = loadConfig(env);
      }
      return config;
    },
    output(opts) {
      return new Output(opts.json === true);
    },
    async run(opts, fn, runOpts) {
      const out = cli.output(opts);
      const cfg = await cli.config();
      const { withCore } = await import("./database.js");
      await withCore(opts.databaseUrl, cfg, (l) => out.notice(l), (core, db) => fn({ core, conn: core.conn, out, config: cfg, db }), runOpts);
    },
    tty: { stdin: process.stdin.isTTY === true, stderr: process.stderr.isTTY === true },
  };
  return cli;
}
