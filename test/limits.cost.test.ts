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
  await t.sql`create table public.grant_writes (op text not null, slots int, rate float8)`;
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
  expect(writes).toEqual([{ op: "INSERT", slots: 20, rate: 10_000 }]);
  const [row] = await t.sql<{ slots: number }[]>`select slots from webhooks.dispatcher_grants where subscription_id = ${w.id}`;
  expect(row?.slots).toBe(20);
}, 90000);
