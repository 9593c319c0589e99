// The shares of a webhook's limits among dispatchers: pure functions, specified by tables.
import {
  GRANT_IDLE_MS,
  GRANT_QUANTUM_MS,
  NO_GRANT,
  allowedShare,
  coolingMs,
  fairShares,
  fairSplit,
  needsRenewal,
  quantumMs,
  rateUnits,
  renew,
  type GrantRow,
  type Limits,
  type LocalGrant,
  type Situation,
} from "../src/model/grant";

const NOW = 1_000_000;
const row = (dispatcher: string, slots: number, wants: number, rate: number | null = null, grantedAt = NOW - 10_000): GrantRow => ({
  dispatcher,
  slots,
  rate,
  wants,
  grantedAt,
});
const claimant = (id: string, wants: number, holds = 0, grantedAt = NOW - 10_000) => ({ id, wants, holds, grantedAt });
const held = (slots: number, rate: number | null = null, extra: Partial<LocalGrant> = {}): LocalGrant => ({
  held: true,
  slots,
  rate,
  dbSlots: slots,
  dbRate: rate,
  coolUntil: 0,
  ...extra,
});

describe("fairSplit: max-min fair whole units", () => {
  it.each<[string, number, number[], number[]]>([
    ["one claimant gets what it wants", 10, [4], [4]],
    ["equal wants split evenly", 9, [10, 10, 10], [3, 3, 3]],
    ["a small want is met in full, the rest is shared", 10, [1, 10, 10], [1, 5, 4]],
    ["never more than wanted in total", 10, [2, 3], [2, 3]],
    ["fewer units than claimants: the oldest get them", 2, [5, 5, 5], [1, 1, 0]],
    ["nothing to split", 0, [3, 3], [0, 0]],
  ])("%s", (_name, total, wants, expected) => {
    // Claimants in order of age: "a" has waited longest.
    const cs = wants.map((w, i) => claimant(String.fromCharCode(97 + i), w, 0, NOW - 10_000 + i));
    const out = fairSplit(total, cs, NOW);
    expect(cs.map((c) => out.get(c.id))).toEqual(expected);
  });

  it("lets a claimant keep an odd unit it got less than a quantum ago", () => {
    const cs = [claimant("old", 1, 0, NOW - 10_000), claimant("fresh", 1, 1, NOW - GRANT_QUANTUM_MS + 1)];
    expect(fairSplit(1, cs, NOW).get("fresh")).toBe(1);
  });

  it("moves the odd unit to the longest waiting once the quantum is over", () => {
    const cs = [claimant("old", 1, 0, NOW - 10_000), claimant("holder", 1, 1, NOW - GRANT_QUANTUM_MS)];
    expect(fairSplit(1, cs, NOW).get("old")).toBe(1);
  });

  it("rotates one slot among three dispatchers, each in turn", () => {
    // Each takes the slot when its turn comes (grantedAt = then), holds it for a quantum.
    const at: Record<string, number> = { a: 0, b: 1, c: 2 };
    let holder = "";
    const order: string[] = [];
    for (let step = 0; step < 6; step++) {
      const now = 10_000 + step * GRANT_QUANTUM_MS;
      const out = fairSplit(1, Object.keys(at).map((id) => claimant(id, 1, id === holder ? 1 : 0, at[id])), now);
      const next = [...out].find(([, n]) => n === 1)?.[0] ?? "";
      if (next !== holder) at[next] = now;
      holder = next;
      order.push(holder);
    }
    expect(order).toEqual(["a", "b", "c", "a", "b", "c"]);
  });
});

describe("the quantum", () => {
  it("is half a second without a rate limit, two coolings with one", () => {
    expect(quantumMs({ maxInFlight: 1, ratePerS: null })).toBe(GRANT_QUANTUM_MS);
    expect(quantumMs({ maxInFlight: 1, ratePerS: 2 })).toBe(2000);
    expect(quantumMs({ maxInFlight: 1, ratePerS: 0.25 })).toBe(8000);
  });
});

describe("rate units", () => {
  it.each<[number, number, number]>([
    [2, 2, 1],
    [2.5, 2, 1],
    [10_000, 10_000, 1],
    [0.5, 1, 0.5],
    [0.001, 1, 0.001],
  ])("%d/s splits into %i units of %d/s", (rate, count, size) => {
    expect(rateUnits(rate)).toEqual({ count, size });
  });

  it("cools a lowered share for a second, or one spacing of a slower unit", () => {
    expect(coolingMs(2)).toBe(1000);
    expect(coolingMs(0.5)).toBe(2000);
  });
});

describe("fairShares", () => {
  const limits: Limits = { maxInFlight: 10, ratePerS: 2 };

  it("gives one dispatcher alone the whole limit, even beyond what it wants now", () => {
    const out = fairShares(limits, [row("a", 0, 1), row("b", 0, 0)], NOW);
    expect(out.get("a")).toEqual({ slots: 10, rate: 2 });
    expect(out.get("b")).toEqual({ slots: 0, rate: 0 });
  });

  it("splits slots by what each wants, and the rate in whole requests per second", () => {
    const out = fairShares(limits, [row("a", 10, 10, 2), row("b", 0, 10, 0, NOW - 20_000), row("c", 0, 10, 0, NOW - 30_000)], NOW);
    expect([...out.values()].reduce((n, s) => n + s.slots, 0)).toBe(10);
    expect([...out.values()].reduce((n, s) => n + (s.rate ?? 0), 0)).toBe(2);
    // Never a fractional share that would put 3 requests into one second at 2/s.
    for (const s of out.values()) expect(Number.isInteger(s.rate)).toBe(true);
  });

  it("gives a fractional limit below 1/s to one dispatcher at a time", () => {
    const out = fairShares({ maxInFlight: 1, ratePerS: 0.5 }, [row("a", 0, 1, 0, NOW - 5), row("b", 0, 1, 0, NOW - 9)], NOW);
    expect(out.get("b")).toEqual({ slots: 1, rate: 0.5 });
    expect(out.get("a")).toEqual({ slots: 0, rate: 0 });
  });

  it("gives rate only to dispatchers that get slots", () => {
    const out = fairShares({ maxInFlight: 1, ratePerS: 3 }, [row("a", 0, 1, 0, NOW - 9), row("b", 0, 1, 0, NOW - 5)], NOW);
    expect(out.get("a")).toEqual({ slots: 1, rate: 3 });
    expect(out.get("b")).toEqual({ slots: 0, rate: 0 });
  });
});

describe("allowedShare: only what the others leave free", () => {
  it.each<[string, Limits, GrantRow[], { slots: number; rate: number | null }]>([
    ["all free", { maxInFlight: 10, ratePerS: null }, [], { slots: 10, rate: null }],
    ["others hold 7 of 10", { maxInFlight: 10, ratePerS: null }, [row("b", 7, 7)], { slots: 3, rate: null }],
    ["others hold more than a lowered limit", { maxInFlight: 2, ratePerS: null }, [row("b", 5, 5)], { slots: 0, rate: null }],
    ["a rate held while cooling is not free", { maxInFlight: 10, ratePerS: 2 }, [row("b", 0, 0, 2)], { slots: 10, rate: 0 }],
    ["a row written without a limit counts as all of it", { maxInFlight: 10, ratePerS: 2 }, [row("b", 0, 0, null)], { slots: 10, rate: 0 }],
    ["a tiny rate (stored below the floor) is not rounded away", { maxInFlight: 10, ratePerS: 1e-7 }, [], { slots: 10, rate: 1e-7 }],
  ])("%s", (_name, limits, others, expected) => {
    expect(allowedShare(limits, { slots: 10, rate: limits.ratePerS }, others)).toEqual(expected);
  });
});

describe("needsRenewal: when a dispatcher goes back to the database", () => {
  const base: Situation = {
    limits: { maxInFlight: 10, ratePerS: null },
    others: [],
    mine: held(10),
    row: row("me", 10, 10),
    wants: 10,
    inFlight: 5,
    idleMs: 0,
    now: NOW,
    localNow: NOW,
    lastStartAt: NOW,
  };
  const lowered: Partial<Situation> = { limits: { maxInFlight: 2, ratePerS: null }, mine: held(2, null, { dbSlots: 5 }), row: row("me", 5, 10) };
  it.each<[string, Partial<Situation>, boolean]>([
    ["alone and busy: never (no query per delivery)", {}, false],
    ["no grant yet, work to do: ask", { mine: NO_GRANT, row: undefined }, true],
    ["no grant and nothing to do: no", { mine: NO_GRANT, row: undefined, wants: 0, inFlight: 0 }, false],
    ["idle alone, briefly: keep it", { wants: 0, inFlight: 0, idleMs: GRANT_IDLE_MS - 1 }, false],
    ["idle alone, long: give it back", { wants: 0, inFlight: 0, idleMs: GRANT_IDLE_MS }, true],
    ["idle while another waits: give it back now", { wants: 0, inFlight: 0, others: [row("b", 0, 3)] }, true],
    ["another waits: give back the surplus", { others: [row("b", 0, 10)] }, true],
    ["another holds its fair share: nothing to do", { mine: held(5), row: row("me", 5, 10), others: [row("b", 5, 10)] }, false],
    ["free slots and wanting more: take", { mine: held(5), row: row("me", 5, 10), others: [row("b", 2, 2)] }, true],
    ["a limit lowered while requests were open, now finished: give back", { ...lowered, inFlight: 2 }, true],
    ["...but not while they are still open", { ...lowered, inFlight: 4 }, false],
  ])("%s", (_name, over, expected) => {
    expect(needsRenewal({ ...base, ...over })).toBe(expected);
  });

  it("gives back a lowered rate only after it has cooled", () => {
    // Sharing with b, which waits for the unit this dispatcher gave up.
    const s: Situation = {
      ...base,
      limits: { maxInFlight: 10, ratePerS: 2 },
      others: [row("b", 5, 5, 0)],
      mine: held(5, 1, { dbRate: 2, coolUntil: NOW + 1000 }),
      row: row("me", 5, 10, 2),
    };
    expect(needsRenewal(s)).toBe(false);
    expect(needsRenewal({ ...s, localNow: NOW + 1000 })).toBe(true);
  });
});

describe("renew", () => {
  const s = { others: [] as GrantRow[], mine: NO_GRANT, row: undefined as GrantRow | undefined, wants: 3, inFlight: 0, now: NOW, localNow: NOW, lastStartAt: NOW };

  it("takes the whole limit when alone, and marks the row as raised", () => {
    const r = renew({ ...s, limits: { maxInFlight: 10, ratePerS: 5 } });
    expect(r.grant).toMatchObject({ held: true, slots: 10, rate: 5 });
    expect(r.row).toEqual({ slots: 10, rate: 5, wants: 3, raised: true });
  });

  it("keeps in its row what is still open above a lowered share", () => {
    const r = renew({ ...s, limits: { maxInFlight: 2, ratePerS: null }, mine: held(10), row: row("me", 10, 10), inFlight: 6 });
    expect(r.grant).toMatchObject({ slots: 2, dbSlots: 6 });
    expect(r.row).toMatchObject({ slots: 6, raised: false });
  });

  it("keeps a lowered rate in its row while it cools", () => {
    const others = [row("b", 0, 5, 0, NOW - 20_000)];
    const r = renew({ ...s, limits: { maxInFlight: 10, ratePerS: 2 }, others, mine: held(10, 2), row: row("me", 10, 5, 2), wants: 5 });
    expect(r.grant.rate).toBe(1);
    expect(r.row?.rate).toBe(2);
    expect(r.grant.coolUntil).toBe(NOW + 1000);
  });

  it("cools a lowered rate from its last request: one idle for a second gives it back at once", () => {
    const others = [row("b", 0, 5, 0, NOW - 20_000)];
    const r = renew({ ...s, limits: { maxInFlight: 10, ratePerS: 2 }, others, mine: held(10, 2), row: row("me", 10, 5, 2), wants: 5, lastStartAt: NOW - 1000 });
    expect(r.grant.rate).toBe(1);
    expect(r.row?.rate).toBe(1);
  });

  it("holds the whole new limit while cooling when a rate limit appears", () => {
    const r = renew({ ...s, limits: { maxInFlight: 10, ratePerS: 2 }, mine: held(10, null), row: row("me", 10, 5, null) });
    expect(r.grant.rate).toBe(2);
    expect(r.row?.rate).toBe(2);
  });

  it("deletes the row when there is nothing to hold or want", () => {
    expect(renew({ ...s, limits: { maxInFlight: 10, ratePerS: null }, mine: held(10), row: row("me", 10, 1), wants: 0 })).toEqual({ row: null, grant: NO_GRANT });
  });

  it("deletes the row of a webhook that is gone", () => {
    expect(renew({ ...s, limits: null, mine: held(10) }).row).toBeNull();
  });
});
