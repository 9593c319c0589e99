// Fan-out: one event to sizes.fanoutSubs webhooks (the main one paused), from its commit to the
// receiver's last receipt.
import { insertWebhook, now, r2, resetDeliveries, settled, sleep, type Bench, type ReceiverProc } from "../harness";

export async function fanout(b: Bench, receiver: ReceiverProc, mainSub: string) {
  const { sql } = b;
  const subscriptions = b.sizes.fanoutSubs;
  await resetDeliveries(sql);
  await sql`update webhooks.subscriptions set is_active = false where id = ${mainSub}`;
  const subs: string[] = [];
  for (let i = 0; i < subscriptions; i++) subs.push(await insertWebhook(sql, `${receiver.url}/fanout/${i}`));
  await receiver.reset();
  await sleep(1500); // idle again
  await sql`insert into bench_tracked (seq, tenant, amount, note) values (20000000, 't1', 1.00, 'fanout')`;
  const committed = now();
  const s = await receiver.waitFor(subscriptions, 60_000, "fan-out");
  await settled(sql, subscriptions, 30_000, "fan-out");
  await sql`delete from webhooks.subscriptions where id = any(${subs}::uuid[])`;
  await sql`update webhooks.subscriptions set is_active = true where id = ${mainSub}`;
  return { fanout_ms: r2(s.lastAt - committed), fanout_subscriptions: subscriptions };
}
