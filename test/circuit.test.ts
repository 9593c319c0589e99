// Circuit policy: pure functions, specified by tables.
import {
  DEFAULT_BREAKER,
  breakerFor,
  disableReason,
  disablingResponse,
  failingTooLong,
  healthyRow,
  nextHealth,
  probeDue,
  probeIntervalMs,
  tripped,
  type BreakerSettings,
  type HealthRow,
} from "../src/model/circuit";

const S = 1000;
const settings: BreakerSettings = { threshold: 3, probeMinMs: 30 * S, probeMaxMs: 100 * S, disableAfterS: 3600 };
const now = new Date("2026-01-01T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms);
const later = (ms: number) => new Date(now.getTime() + ms);
const ok = { ok: true, startedAt: ago(S) };
const fail = { ok: false, startedAt: ago(S) };
const row = (over: Partial<HealthRow> = {}): HealthRow => ({ ...healthyRow("w"), ...over });

describe("DEFAULT_BREAKER", () => {
  it("takes its values from the config schema's defaults", () => {
    expect(DEFAULT_BREAKER).toEqual({ threshold: 10, probeMinMs: 30_000, probeMaxMs: 600_000, disableAfterS: 5 * 24 * 3600 });
  });
});

describe("tripped", () => {
  it.each<[number, number, boolean]>([
    [0, 3, false],
    [2, 3, false],
    [3, 3, true],
    [4, 3, true],
    [1000, 0, false], // 0: never opens
    [1, 1, true],
  ])("%i failures with threshold %i: %s", (failures, threshold, expected) => {
    expect(tripped(failures, threshold)).toBe(expected);
  });
});

describe("breakerFor", () => {
  it.each<[string, number | null | undefined, number]>([
    ["no threshold of its own takes the dispatcher's", null, 3],
    ["an undefined threshold takes the dispatcher's", undefined, 3],
    ["its own threshold wins", 7, 7],
    ["0 is its own (never opens), not absent", 0, 0],
  ])("%s", (_name, threshold, expected) => {
    const b = breakerFor(settings, threshold);
    expect(b.threshold).toBe(expected);
    expect({ ...b, threshold: 0 }).toEqual({ ...settings, threshold: 0 });
  });
});

describe("nextHealth", () => {
  it.each<[string, HealthRow, { ok: boolean; startedAt: Date }[], Partial<HealthRow>, boolean]>([
    ["a success keeps a closed circuit closed", row(), [ok], { circuit: "closed", consecutive_failures: 0, last_success_at: now }, false],
    [
      "failures under the threshold count but do not open",
      row(),
      [fail, fail],
      { circuit: "closed", consecutive_failures: 2, failing_since: fail.startedAt, last_failure_at: now, opened_at: null },
      false,
    ],
    [
      "the threshold-th failure opens the circuit, probe after probeMinMs",
      row({ consecutive_failures: 2, failing_since: ago(60 * S) }),
      [fail],
      { circuit: "open", consecutive_failures: 3, failing_since: ago(60 * S), opened_at: now, next_probe_at: later(30 * S), probe_interval_ms: 60 * S },
      false,
    ],
    [
      "a success after failures in one batch resets the run",
      row({ consecutive_failures: 2, failing_since: ago(60 * S) }),
      [fail, ok],
      { circuit: "closed", consecutive_failures: 0, failing_since: null, last_success_at: now, last_failure_at: now },
      false,
    ],
    [
      "failures after a success start a new run that opens only past the threshold",
      row({ consecutive_failures: 2 }),
      [ok, fail, fail],
      { circuit: "closed", consecutive_failures: 2, failing_since: fail.startedAt },
      false,
    ],
    [
      "failures after a success past the threshold open",
      row(),
      [ok, fail, fail, fail],
      { circuit: "open", consecutive_failures: 3, opened_at: now, next_probe_at: later(30 * S) },
      false,
    ],
    [
      "a successful probe closes an open circuit and clears the schedule",
      row({ circuit: "half_open", consecutive_failures: 5, opened_at: ago(S), next_probe_at: later(S), probe_interval_ms: 60 * S, probe_delivery_id: "p" }),
      [ok],
      { circuit: "closed", consecutive_failures: 0, opened_at: null, next_probe_at: null, probe_interval_ms: null, probe_delivery_id: null },
      true,
    ],
    [
      "a failed probe reopens and doubles the interval",
      row({ circuit: "half_open", consecutive_failures: 5, opened_at: ago(S), probe_interval_ms: 60 * S, probe_delivery_id: "p" }),
      [fail],
      { circuit: "open", consecutive_failures: 6, next_probe_at: later(60 * S), probe_interval_ms: 100 * S, probe_delivery_id: null, opened_at: ago(S) },
      false,
    ],
    [
      "the probe interval stops growing at probeMaxMs",
      row({ circuit: "open", consecutive_failures: 9, probe_interval_ms: 100 * S }),
      [fail],
      { circuit: "open", next_probe_at: later(100 * S), probe_interval_ms: 100 * S },
      false,
    ],
    [
      "an open circuit without an interval probes after probeMinMs",
      row({ circuit: "open", consecutive_failures: 9, probe_interval_ms: null }),
      [fail],
      { circuit: "open", next_probe_at: later(30 * S), probe_interval_ms: 60 * S },
      false,
    ],
    ["no attempts change nothing", row({ consecutive_failures: 2 }), [], { circuit: "closed", consecutive_failures: 2 }, false],
  ])("%s", (_name, prev, results, expected, closedAgain) => {
    const before = { ...prev };
    const next = nextHealth(prev, results, settings, now);
    expect(next.row).toMatchObject(expected);
    expect(next.closedAgain).toBe(closedAgain);
    expect(prev).toEqual(before); // the previous row is left as it was
  });

  it("never opens with threshold 0", () => {
    const next = nextHealth(row(), Array.from({ length: 50 }, () => fail), { ...settings, threshold: 0 }, now);
    expect(next.row.circuit).toBe("closed");
    expect(next.row.consecutive_failures).toBe(50);
  });
});

describe("probe schedule", () => {
  it.each<[string, Pick<HealthRow, "circuit" | "next_probe_at">, boolean]>([
    ["open, probe due now", { circuit: "open", next_probe_at: now }, true],
    ["open, probe overdue", { circuit: "open", next_probe_at: ago(S) }, true],
    ["open, probe not yet due", { circuit: "open", next_probe_at: later(1) }, false],
    ["open without a probe time", { circuit: "open", next_probe_at: null }, false],
    ["half-open: a probe is already out", { circuit: "half_open", next_probe_at: ago(S) }, false],
    ["closed", { circuit: "closed", next_probe_at: ago(S) }, false],
  ])("probeDue: %s", (_name, h, expected) => {
    expect(probeDue(h, now.getTime())).toBe(expected);
  });

  it.each<[number | null, number]>([
    [null, 30 * S],
    [45 * S, 45 * S],
  ])("probeIntervalMs with a stored interval of %p is %i", (stored, expected) => {
    expect(probeIntervalMs({ probe_interval_ms: stored }, settings)).toBe(expected);
  });
});

describe("when a webhook is disabled", () => {
  it.each<[number | null, string | null]>([
    [410, "the endpoint answered 410 Gone"],
    [404, null],
    [500, null],
    [200, null],
    [null, null],
  ])("disablingResponse(%p)", (status, expected) => {
    expect(disablingResponse({ status })).toBe(expected);
  });

  it.each<[string, Partial<HealthRow>, number, boolean]>([
    ["failing exactly as long as allowed", { consecutive_failures: 4, failing_since: ago(3600 * S) }, 3600, true],
    ["failing a little less long", { consecutive_failures: 4, failing_since: ago(3600 * S - 1) }, 3600, false],
    ["not failing", { consecutive_failures: 0, failing_since: null }, 3600, false],
    ["a failing_since left without failures", { consecutive_failures: 0, failing_since: ago(7200 * S) }, 3600, false],
  ])("failingTooLong: %s", (_name, over, disableAfterS, expected) => {
    expect(failingTooLong(row(over), disableAfterS, now)).toBe(expected);
  });

  const failing = row({ consecutive_failures: 4, failing_since: ago(7200 * S) });
  const fresh = row({ consecutive_failures: 1, failing_since: ago(S) });
  it.each<[string, { status: number | null }[], HealthRow, { is_active: boolean; disable_after_s: number | null } | undefined, string | null]>([
    ["a 410 disables at once", [{ status: 500 }, { status: 410 }], fresh, { is_active: true, disable_after_s: null }, "the endpoint answered 410 Gone"],
    ["a 410 wins over failing too long", [{ status: 410 }], failing, { is_active: true, disable_after_s: null }, "the endpoint answered 410 Gone"],
    [
      "failing longer than the default disable_after_s",
      [{ status: 500 }],
      failing,
      { is_active: true, disable_after_s: null },
      `every attempt has failed since ${ago(7200 * S).toISOString()}`,
    ],
    ["the webhook's own disable_after_s is longer", [{ status: 500 }], failing, { is_active: true, disable_after_s: 10_000 }, null],
    ["the webhook's own disable_after_s is shorter", [{ status: 500 }], fresh, { is_active: true, disable_after_s: 1 }, `every attempt has failed since ${ago(S).toISOString()}`],
    ["an inactive webhook is not disabled again", [{ status: 500 }], failing, { is_active: false, disable_after_s: null }, null],
    ["failing briefly", [{ status: 500 }], fresh, { is_active: true, disable_after_s: null }, null],
  ])("disableReason: %s", (_name, outcomes, health, webhook, expected) => {
    expect(disableReason(outcomes, health, webhook, settings, now)).toBe(expected);
  });
});
