// The rules scenario: what event rules cost the writer. µs per UPDATE of a tracked table with
// 0, 1 and 20 rules compiled into its capture function: a PL/pgSQL loop of N single-row UPDATEs
// in one transaction (rolled back, and both tables vacuumed before each run, so every run sees
// the same table), best of `runs`, the rule counts alternated within each round. Two figures:
// wall time, and the CPU time of the Postgres backend that ran the loop (read from /proc when
// the server runs on this machine), which a busy shared machine disturbs far less. Two kinds of
// update: one that changes `stage` (deal.stage.changed fires) and one that changes `notes` (no
// rule fires). The 20 rules are deal.stage.changed plus 19 that never fire (on_change amount,
// amount > 10^9). `bulk`: one UPDATE of all 10,000 rows' stage, per row. The table (public.deals)
// and its rules are removed afterwards, so later scenarios see the bench database as before.
import { readFileSync } from "node:fs";
import type postgres from "postgres";
import { r2 } from "../harness";

/** CPU seconds (user + system) a local process has used, or null when /proc cannot tell. */
function cpuSeconds(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ");
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; clock ticks of 1/100 s
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

const RULE_COUNTS = [0, 1, 20] as const;
const ROWS = 10000;

/** The rules figures, measured in the database `sql` is connected to (the bench's scratch one). */
export async function rules(sql: postgres.Sql, smoke: boolean) {
  const N = smoke ? 200 : 10000;
  const RUNS = smoke ? 1 : 5;
  await sql.unsafe(`
    create table public.deals (id int primary key, stage text, amount numeric, notes text, owner_id int, updated_at timestamptz);
    insert into public.deals select i, 'lead', i, 'n', i % 10, now() from generate_series(1, ${ROWS}) i;
    select webhooks.track_table('public.deals');`);
  await sql.unsafe("vacuum analyze public.deals");

  const setRules = async (count: number) => {
    await sql`delete from webhooks.event_rules where table_name = ${"public.deals"}::regclass`;
    if (count > 0) await sql`select webhooks.add_event_rule('public.deals', 'deal.stage.changed', on_change => array['stage'])`;
    for (let i = 1; i < count; i++) {
      await sql`select webhooks.add_event_rule('public.deals', ${`deal.rule_${i}`}, on_change => array['amount'],
                  condition => '{"data.amount": {"$gt": 1000000000}}')`;
    }
    await sql`select webhooks.track_table('public.deals')`; // recompile with the rows as they are
  };

  /** µs per UPDATE (wall and backend CPU), and the events one UPDATE wrote. */
  const once = async (column: "stage" | "notes" | "bulk"): Promise<{ us: number; cpuUs: number | null; events: number }> => {
    const rows = column === "bulk" ? ROWS : N;
    let us = 0;
    let cpuUs: number | null = null;
    let events = 0;
    await sql.unsafe("vacuum public.deals, webhooks.outbox");
    await sql
      .begin(async (tx) => {
        const [b] = await tx.unsafe<{ pid: number }[]>("select pg_backend_pid() as pid");
        const pid = b?.pid ?? 0;
        const cpu0 = cpuSeconds(pid);
        const [r] = await tx.unsafe<{ ms: number }[]>(`select webhooks_bench_loop(${column === "bulk" ? 1 : N}, '${column}') as ms`);
        const cpu1 = cpuSeconds(pid);
        const [c] = await tx.unsafe<{ events: number }[]>("select count(*)::int as events from webhooks.outbox");
        us = ((r?.ms ?? 0) * 1000) / rows;
        cpuUs = cpu0 === null || cpu1 === null ? null : ((cpu1 - cpu0) * 1e6) / rows;
        events = (c?.events ?? 0) / rows;
        throw new RollBack();
      })
      .catch((e) => {
        if (!(e instanceof RollBack)) throw e;
      });
    return { us, cpuUs, events };
  };
  await sql.unsafe(`
    create function webhooks_bench_loop(n int, col text) returns double precision language plpgsql as $$
    declare
      t0 timestamptz := clock_timestamp();
    begin
      for i in 1..n loop
        if col = 'bulk' then
          update public.deals set stage = case when stage = 'lead' then 'won' else 'lead' end;
        elsif col = 'stage' then
          update public.deals set stage = case when stage = 'lead' then 'won' else 'lead' end where id = 1 + (i * 7919) % 10000;
        else
          update public.deals set notes = notes || 'x' where id = 1 + (i * 7919) % 10000;
        end if;
      end loop;
      return extract(epoch from clock_timestamp() - t0) * 1000;
    end $$`);

  const best: Record<string, number> = {};
  const bestCpu: Record<string, number> = {};
  const eventsPer: Record<string, number> = {};
  for (let run = 0; run < RUNS; run++) {
    for (const count of run % 2 === 0 ? RULE_COUNTS : [...RULE_COUNTS].reverse()) {
      await setRules(count);
      for (const column of ["stage", "notes", "bulk"] as const) {
        const key = `${column}_${count}_rules`;
        const r = await once(column);
        best[key] = Math.min(best[key] ?? Infinity, r.us);
        if (r.cpuUs !== null) bestCpu[key] = Math.min(bestCpu[key] ?? Infinity, r.cpuUs);
        eventsPer[key] = r.events;
      }
    }
  }
  const figures = {
    n_updates: N,
    runs: RUNS,
    us_per_update: Object.fromEntries(Object.entries(best).map(([k, v]) => [k, r2(v)])),
    backend_cpu_us_per_update: Object.fromEntries(Object.entries(bestCpu).map(([k, v]) => [k, r2(v)])),
    events_per_update: eventsPer,
    ratio_20_to_0_rules: {
      stage: r2((best.stage_20_rules ?? 0) / (best.stage_0_rules ?? 1)),
      notes: r2((best.notes_20_rules ?? 0) / (best.notes_0_rules ?? 1)),
      stage_cpu: r2((bestCpu.stage_20_rules ?? 0) / (bestCpu.stage_0_rules ?? 1)),
      notes_cpu: r2((bestCpu.notes_20_rules ?? 0) / (bestCpu.notes_0_rules ?? 1)),
      bulk_cpu: r2((bestCpu.bulk_20_rules ?? 0) / (bestCpu.bulk_0_rules ?? 1)),
    },
  };
  await sql.unsafe(`
    drop function webhooks_bench_loop(int, text);
    delete from webhooks.event_rules where table_name = 'public.deals'::regclass;
    select webhooks.untrack_table('public.deals');
    drop table public.deals;`);
  return figures;
}

class RollBack extends Error {}
