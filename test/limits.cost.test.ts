// What sharing a webhook's limits costs one dispatcher alone: a grant once per webhook, not a
// query per delivery (writes to webhooks.dispatcher_grants are counted by a trigger).
import { createTestDatabase, type TestDatabase } from "./helpers/db";
import { insertWebhook, runDispatcher, settled, type RunningDispatcher } from "./helpers/pipeline";
import { startReceiver, type Receiver } from "./helpers/receiver";

let t: TestDatabase;
let rx: Receiver;
let d: RunningDispatcher | undefined;

beforeAll(async () => {
  t = await createTestDatabase();
  rx = await startReceiver();
  await t.sql`create table public.grant_writes (op text not null, slots int, rate float8, tx bigint not null default txid_current())`;
  await t.sql.unsafe(`
    create function public.count_grant_write() returns trigger language plpgsql as $$
    begin
      insert into public.grant_writes
      values (tg_op, case when tg_op = 'DELETE' then old.slots else new.slots end,
                     case when tg_op = 'DELETE' then old.rate_share else new.rate_share end);
      return null;
    end $$;
    create trigger count_grant_writes after insert or update or delete on webhooks.dispatcher_grants
      for each row execute function public.count_grant_write();`);
});
afterAll(async () => {
  await d?.stop();
  await rx?.close();
  await t?.close();
});

it("takes one grant for 2,000 deliveries to a webhook when it sends alone, with the whole limit", async () => {
  const w = await insertWebhook(t.sql, { url: rx.url, events: ["cost.*"], max_in_flight: 20, rate_limit_per_s: 10_000 });
  d = await runDispatcher(t.url);
  for (let i = 0; i < 10; i++) await t.sql`select webhooks.emit('cost.created', jsonb_build_object('n', g)) from generate_series(1, 200) g`;
  expect(await settled(t.sql, 2000, 60000)).toEqual({ succeeded: 2000 });
  const writes = await t.sql<{ op: string; slots: number; rate: number }[]>`select op, slots, rate from public.grant_writes`;
  await t.sql`truncate public.grant_writes`;
  expect(writes).toEqual([{ op: "INSERT", slots: 20, rate: 10_000 }]);
  const [row] = await t.sql<{ slots: number }[]>`select slots from webhooks.dispatcher_grants where subscription_id = ${w.id}`;
  expect(row?.slots).toBe(20);
}, 90000);

it("takes the grants of 50 webhooks that get work together in one transaction", async () => {
  for (let i = 0; i < 50; i++) await insertWebhook(t.sql, { url: `${rx.url}/w${i}`, events: ["many.*"], max_in_flight: 5 });
  d ??= await runDispatcher(t.url);
  await t.sql`select webhooks.emit('many.created', '{"n": 1}'::jsonb)`;
  expect(await settled(t.sql, 2000 + 50, 60000)).toEqual({ succeeded: 2050 });
  const [w] = await t.sql<{ rows: number; txs: number }[]>`
    select count(*)::int as rows, count(distinct tx)::int as txs from public.grant_writes where op = 'INSERT'`;
  expect(w?.rows).toBe(50);
  expect(w?.txs).toBe(1);
}, 90000);
