// Runs the real `pg-webhooks` binary (bin/ → dist/, so build first) as a child process.
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

export const BIN = join(__dirname, "..", "..", "bin", "pg-webhooks.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Extra environment; DATABASE_URL is the usual one. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed (stdin is never a TTY here). */
  input?: string;
  timeoutMs?: number;
  cwd?: string;
}

function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn", FORCE_COLOR: "0" };
  // The child decides its database only from what the test passes.
  delete env.DATABASE_URL;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: childEnv(opts.env),
      cwd: opts.cwd ?? process.cwd(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`pg-webhooks ${args.join(" ")} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs the command and parses its stdout as JSON, failing loudly on a non-zero exit. */
export async function runJson<T = unknown>(args: string[], opts: CliOptions = {}): Promise<T> {
  const r = await runCli([...args, "--json"], opts);
  if (r.code !== 0) throw new Error(`pg-webhooks ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`pg-webhooks ${args.join(" ")} printed non-JSON on stdout:\n${r.stdout}\nstderr: ${r.stderr}`);
  }
}

export interface RunningCli {
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves once stderr or stdout contains `text`. */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Starts a long-running command such as `start --no-api`. */
export function spawnCli(args: string[], opts: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(opts.env), cwd: opts.cwd ?? process.cwd() });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((l) => l());
  child.stdout?.setEncoding("utf8").on("data", (d: string) => ((stdout += d), changed()));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => ((stderr += d), changed()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    child,
    output: () => ({ stdout, stderr }),
    waitForOutput(text, timeoutMs = 20_000) {
      const seen = () => (typeof text === "string" ? (stdout + stderr).includes(text) : text.test(stdout + stderr));
      if (seen()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no ${String(text)} in output within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        const check = () => {
          if (!seen()) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
        exited.then(() => {
          if (!seen()) {
            clearTimeout(timer);
            listeners.delete(check);
            reject(new Error(`pg-webhooks ${args.join(" ")} exited before printing ${String(text)}\nstdout: ${stdout}\nstderr: ${stderr}`));
          }
        });
      });
    },
    async stop(signal = "SIGTERM", timeoutMs = 20_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
