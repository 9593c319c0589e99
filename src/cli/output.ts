// What a command prints: aligned tables (cli-table3) for people, JSON for scripts. With
// --json, stdout carries exactly one JSON document and every notice goes to stderr.
import Table from "cli-table3";

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
  /** Cut longer cells to this many characters (tables only). */
  max?: number;
}

/** JSON.stringify that keeps bigints (ids from postgres) as strings. */
export function toJson(value: unknown, pretty = true): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), pretty ? 2 : undefined);
}

function cell(v: unknown, max?: number): string {
  let s: string;
  if (v === null || v === undefined) s = "-";
  else if (v instanceof Date) s = v.toISOString();
  else if (Array.isArray(v)) s = v.map((x) => (typeof x === "string" ? x : toJson(x, false))).join(",");
  else if (typeof v === "object") s = toJson(v, false);
  else s = String(v);
  s = s.replace(/\s+/g, " ");
  if (max !== undefined && s.length > max) s = `${s.slice(0, Math.max(1, max - 1))}…`;
  return s;
}

// No borders: columns line up like `kubectl get`, and stay grep- and awk-friendly.
const PLAIN = {
  chars: {
    top: "", "top-mid": "", "top-left": "", "top-right": "",
    bottom: "", "bottom-mid": "", "bottom-left": "", "bottom-right": "",
    left: "", "left-mid": "", mid: "", "mid-mid": "", right: "", "right-mid": "", middle: "  ",
  },
  style: { "padding-left": 0, "padding-right": 0, head: [] as string[], border: [] as string[] },
};

export class Output {
  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  /** A line for people: on stdout normally, on stderr under --json. */
  say(line: string): void {
    (this.json ? this.stderr : this.stdout).write(`${line}\n`);
  }

  /** Always stderr: progress, warnings, what the command is doing. */
  notice(line: string): void {
    this.stderr.write(`${line}\n`);
  }

  /** Prints `value` as JSON under --json, otherwise runs `human`. */
  result(value: unknown, human: () => void): void {
    if (this.json) this.stdout.write(`${toJson(value)}\n`);
    else human();
  }

  /** A list: a JSON array under --json, a table otherwise. */
  list<T>(rows: T[], columns: Column<T>[], opts: { empty?: string; jsonValue?: unknown } = {}): void {
    this.result(opts.jsonValue ?? rows, () => {
      if (rows.length === 0) {
        this.stdout.write(`${opts.empty ?? "Nothing found."}\n`);
        return;
      }
      this.stdout.write(`${renderTable(rows, columns)}\n`);
    });
  }

  /** One object as key/value lines (humans) or JSON. */
  object(value: unknown, fields: [string, unknown][]): void {
    this.result(value, () => this.stdout.write(`${renderFields(fields)}\n`));
  }
}

export function renderTable<T>(rows: T[], columns: Column<T>[]): string {
  const table = new Table({ head: columns.map((c) => c.header.toUpperCase()), ...PLAIN });
  for (const row of rows) table.push(columns.map((c) => cell(c.value(row), c.max)));
  return table.toString().split("\n").map((l) => l.trimEnd()).join("\n");
}

export function renderFields(fields: [string, unknown][]): string {
  const table = new Table(PLAIN);
  for (const [k, v] of fields) table.push([`${k}:`, cell(v)]);
  return table.toString().split("\n").map((l) => l.trimEnd()).join("\n");
}

export const formatRate = (r: number | null): string => (r === null ? "-" : `${(r * 100).toFixed(1)}%`);

export function formatAge(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.round(m / 60);
  return h < 48 ? `${h}h` : `${Math.round(h / 24)}d`;
}
