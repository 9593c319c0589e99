// Backfill: a table of existing rows (2,000 smoke, 40,000 full), tracked after it was filled,
// sent to one webhook by the dispatcher's backfill job. rows_per_s: rows written as events
// (start to state done); delivered_per_s: start to the last delivery recorded.
import { DispatcherProc, assert, insertWebhook, now, r2, resetDeliveries, settled, sleep, type Bench, type ReceiverProc } from "../harness";

export async function backfill(b: Bench, receiver: ReceiverProc, mainSub: string) {
  const { sql } = b;
  const rows = b.smoke ? 2_000 : 40_000;
  await resetDeliveries(sql);
  await sql`update webhooks.subscriptions set is_active = false where id = ${mainSub}`;
  await sql`drop table if exists bench_backfill`;
  await sql`create table bench_backfill (id bigint primary key, tenant text, name text, amount numeric, big bigint, created_at timestamptz default now())`;
  await sql`
    insert into bench_backfill (id, tenant, name, amount, big)
    select g, 't' || (g % 10), md5(g::text), (g % 1000) / 10.0, 9007199254740993 + g from generate_series(1, ${rows}) g`;
  await sql`select webhooks.track_table('bench_backfill'::regclass, 'bf', tenant_column => 'tenant')`;
  const sub = await insertWebhook(sql, `${receiver.url}/backfill`, 100);
  await sql`update webhooks.subscriptions set events = '{nothing.matches}' where id = ${sub}`;
  await receiver.reset();
  const d = DispatcherProc.start(b);
  try {
    await d.ready(sql);
    const t0 = now();
    const [row] = await sql<{ id: string }[]>`
      insert into webhooks.backfills (subscription_id, table_name, key_columns, rows_total)
      values (${sub}, 'bench_backfill'::regclass, '{id}', ${rows}) returning id`;
    await sql`select graphile_worker.add_job('pgw_backfill', json_build_object('b', ${row!.id}::text), job_key => ${"pgw_backfill:" + row!.id})`;
    for (;;) {
      const [s] = await sql<{ state: string }[]>`select state from webhooks.backfills where id = ${row!.id}`;
      if (s!.state !== "running") {
        assert(s!.state === "done", `backfill ended ${s!.state}`);
        break;
      }
      await sleep(20);
    }
    const writtenMs = now() - t0;
    const last = await settled(sql, rows, b.smoke ? 60_000 : 300_000, "backfill");
    const [t0row] = await sql<{ t: Date }[]>`select created_at as t from webhooks.backfills where id = ${row!.id}`;
    const deliveredS = (last.getTime() - t0row!.t.getTime()) / 1000;
    const s = await receiver.stats();
    assert(s.count === rows, `backfill: receiver saw ${s.count} of ${rows}`);
    return {
      backfill_rows_per_s: Math.round(rows / (writtenMs / 1000)),
      backfill_delivered_per_s: Math.round(rows / deliveredS),
      backfill: { rows, written_s: r2(writtenMs / 1000), delivered_s: r2(deliveredS) },
    };
  } finally {
    await d.stop();
    await sql`delete from webhooks.subscriptions where id = ${sub}`;
    await sql`update webhooks.subscriptions set is_active = true where id = ${mainSub}`;
  }
}
