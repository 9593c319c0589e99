// The lanes' window arithmetic: pure functions, specified by tables.
import {
  FANOUT_MIN_BATCH,
  drainsSoon,
  pacedBatch,
  INITIAL_WINDOW,
  TOTAL_QUEUE_CAP,
  fanoutRoom,
  laneCap,
  nextWindow,
  openLimit,
  putBackDelayMs,
  startDelayMs,
  totalRoom,
  waitEstimateMs,
} from "../src/model/window";

describe("the in-flight window", () => {
  it("starts at one request", () => {
    expect(INITIAL_WINDOW).toBe(1);
  });

  it.each<[string, number, boolean, number, number]>([
    ["doubles on success", 1, true, 10, 2],
    ["doubles again", 4, true, 10, 8],
    ["stops at max_in_flight", 8, true, 10, 10],
    ["stays at max_in_flight", 10, true, 10, 10],
    ["a max_in_flight of 1 keeps it at 1", 1, true, 1, 1],
    ["halves on failure", 8, false, 10, 4],
    ["halves an odd window down", 5, false, 10, 2],
    ["never falls below one", 1, false, 10, 1],
    ["a window above a lowered max_in_flight is capped on the next success", 16, true, 4, 4],
  ])("%s", (_name, window, ok, maxInFlight, expected) => {
    expect(nextWindow(window, ok, maxInFlight)).toBe(expected);
  });

  it("reaches max_in_flight after log2(max) successes and falls back to one after as many failures", () => {
    let w = INITIAL_WINDOW;
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) seen.push((w = nextWindow(w, true, 16)));
    for (let i = 0; i < 5; i++) seen.push((w = nextWindow(w, false, 16)));
    expect(seen).toEqual([2, 4, 8, 16, 16, 8, 4, 2, 1, 1]);
  });

  it.each<[number, number, number]>([
    [1, 10, 1],
    [10, 10, 10],
    [16, 4, 4], // max_in_flight lowered while the window was wide
  ])("openLimit(window %i, max %i) = %i", (window, max, expected) => {
    expect(openLimit(window, max)).toBe(expected);
  });
});

describe("request spacing", () => {
  it.each<[string, number | null, number, number, number]>([
    ["no rate limit: now", null, 1000, 1000, 0],
    ["the first request: now", 5, -Infinity, 1000, 0],
    ["5/s: 200 ms after the last start", 5, 1000, 1000, 200],
    ["5/s, 150 ms later: 50 ms more", 5, 1000, 1150, 50],
    ["5/s, spacing already passed: now", 5, 1000, 1300, 0],
    ["0.5/s: two seconds", 0.5, 0, 0, 2000],
    ["a rate above the maximum counts as the maximum", 1e9, 0, 0, 0.1],
    ["a rate below the minimum counts as the minimum", 0, 0, 0, 1_000_000],
  ])("%s", (_name, rate, last, now, expected) => {
    expect(startDelayMs(rate, last, now)).toBeCloseTo(expected, 6);
  });
});

describe("caps", () => {
  it.each<[number, number]>([
    [1, 100],
    [10, 100],
    [11, 110],
    [500, 5000],
  ])("a lane with max_in_flight %i queues at most %i", (max, cap) => {
    expect(laneCap(max)).toBe(cap);
  });

  it.each<[string, number, number, number]>([
    ["an empty lane takes half the total from fanout", 10, 0, TOTAL_QUEUE_CAP / 2],
    ["less what it holds", 10, 2000, TOTAL_QUEUE_CAP / 2 - 2000],
    ["a full lane takes none", 10, TOTAL_QUEUE_CAP / 2, 0],
    ["never a negative room", 10, TOTAL_QUEUE_CAP, 0],
    ["a lane whose own cap is larger than half the total keeps it", 1000, 0, 10_000],
  ])("fanoutRoom: %s", (_name, max, queued, expected) => {
    expect(fanoutRoom(max, queued)).toBe(expected);
  });

  it.each<[number, number]>([
    [0, TOTAL_QUEUE_CAP],
    [4999, 1],
    [TOTAL_QUEUE_CAP, 0],
    [TOTAL_QUEUE_CAP + 10, 0],
  ])("totalRoom(%i) = %i", (held, expected) => {
    expect(totalRoom(held)).toBe(expected);
  });
});

describe("a full lane", () => {
  it.each<[string, number, number, number, number, number, number]>([
    ["room enough: no wait", 50, 10, 100, 200, 1, 0],
    ["exactly full: no wait", 90, 10, 100, 200, 1, 0],
    ["10 over, one at a time at 200 ms", 100, 10, 100, 200, 1, 2000],
    ["10 over, five at a time", 100, 10, 100, 200, 5, 400],
    ["an open limit of 0 counts as one", 100, 10, 100, 200, 0, 2000],
  ])("waitEstimateMs: %s", (_name, queued, n, cap, perRequest, limit, expected) => {
    expect(waitEstimateMs(queued, n, cap, perRequest, limit)).toBe(expected);
  });

  it.each<[string, boolean, number, number]>([
    ["moving: half a second", false, 60_000, 500],
    ["stuck, short estimate: a second", true, 10, 1000],
    ["stuck: its estimate", true, 7000, 7000],
    ["stuck, long estimate: 30 s at most", true, 600_000, 30_000],
  ])("putBackDelayMs: %s", (_name, stuck, estimate, expected) => {
    expect(putBackDelayMs(stuck, estimate)).toBe(expected);
  });
});

describe("paced fanout", () => {
  it("waits only for lanes that free room for a batch within the pace wait", () => {
    // 100 open at 20 ms each: 500 in 100 ms.
    expect(drainsSoon(20, 100)).toBe(true);
    // One at a time at 20 ms (5 in 100 ms), or 10 open at a second each: never waited for.
    expect(drainsSoon(20, 1)).toBe(false);
    expect(drainsSoon(1000, 10)).toBe(false);
    expect(drainsSoon(0, 1)).toBe(true); // instant answers: 1 per ms at least
  });

  it("reads what the fullest busy lane takes, waits below the minimum, and is unpaced without busy lanes", () => {
    expect(pacedBatch([], 1000)).toBe(1000);
    expect(pacedBatch([5000, 2500], 1000)).toBe(1000);
    expect(pacedBatch([5000, 300], 1000)).toBe(300);
    expect(pacedBatch([FANOUT_MIN_BATCH], 1000)).toBe(FANOUT_MIN_BATCH);
    expect(pacedBatch([FANOUT_MIN_BATCH - 1, 5000], 1000)).toBe(0);
    expect(pacedBatch([0], 1000)).toBe(0);
  });
});
