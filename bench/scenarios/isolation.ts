// Isolation: a healthy webhook's delivery rate with a hanging sibling subscribed to the same
// events, against its rate alone, measured in the same run: `isolation_ratio` (with / without).
import { insertEvents, insertWebhook, now, r2, resetDeliveries, settled, sleep, type Bench, type ReceiverProc } from "../harness";

export async function isolation(b: Bench, receiver: ReceiverProc, mainSub: string) {
  const { sql } = b;
  const n = b.sizes.isolationEvents;
  const healthyRun = async (seqBase: number) => {
    await resetDeliveries(sql);
    await receiver.reset();
    const t0 = now();
    await insertEvents(sql, n, seqBase, 500);
    const s = await receiver.waitFor(n, 120_000, "isolation: healthy deliveries");
    const [r] = await sql<{ ok: number }[]>`
      select count(*)::int as ok from webhooks.deliveries where subscription_id = ${mainSub} and status = 'succeeded'`;
    return { perS: n / ((s.lastAt - t0) / 1000), received: s.count, succeeded: r!.ok };
  };
  const alone = await healthyRun(40_000_000);
  await settled(sql, n, 60_000, "isolation: healthy alone");
  // For reference: the same extra work (a second webhook on every event), but healthy.
  const sibling = await insertWebhook(sql, `${receiver.url}/sibling`);
  const withHealthy = await healthyRun(39_000_000);
  await settled(sql, 2 * n, 60_000, "isolation: healthy sibling");
  await sql`delete from webhooks.subscriptions where id = ${sibling}`;
  // The sick sibling: accepts connections, never answers; its requests time out after 5 s.
  const sick = await insertWebhook(sql, `${receiver.url}/hang`);
  const withSick = await healthyRun(41_000_000);
  const [a] = await sql<{ n: number; waiting: number }[]>`
    select (select count(*)::int from webhooks.attempts a join webhooks.deliveries d on d.id = a.delivery_id
             where d.subscription_id = ${sick}) as n,
           (select count(*)::int from webhooks.deliveries where subscription_id = ${sick} and status in ('pending', 'retrying')) as waiting`;
  await sql`update webhooks.subscriptions set is_active = false where id = ${sick}`;
  await sleep(6000); // let the hung requests time out and be recorded before the tables are cleared
  await resetDeliveries(sql);
  await sql`delete from webhooks.endpoint_health where subscription_id = ${sick}`;
  await sql`delete from webhooks.subscriptions where id = ${sick}`;
  return {
    isolation_ratio: r2(withSick.perS / alone.perS),
    isolation: {
      events: n,
      healthy_alone_per_s: Math.round(alone.perS),
      healthy_with_healthy_sibling_per_s: Math.round(withHealthy.perS),
      healthy_with_hanging_sibling_per_s: Math.round(withSick.perS),
      healthy_succeeded_with_sibling: withSick.succeeded,
      sick_attempts_meanwhile: a!.n,
      sick_deliveries_waiting: a!.waiting,
    },
  };
}
