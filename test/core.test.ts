// The composition root's one close(): releasers stop newest first, "together" ones at once,
// each bounded by the grace period, and a core without a database never connects.
import { createCore } from "../src/core";
import { createLogger } from "../src/logger";
import { testConfig } from "./helpers/pipeline";

const silent = createLogger("silent", false);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("createCore", () => {
  it("closes what it was given in reverse order of acquisition, once", async () => {
    const core = createCore(testConfig(), { database: null, logger: silent });
    const order: string[] = [];
    core.defer("first", async () => void order.push("first"));
    core.defer("second", async () => void order.push("second"));
    core.defer("third", async () => void order.push("third"));
    await Promise.all([core.close(), core.close()]);
    await core.close();
    expect(order).toEqual(["third", "second", "first"]);
  });

  it("stops releasers deferred together at the same time, before the ones below them", async () => {
    const core = createCore(testConfig(), { database: null, logger: silent });
    const events: string[] = [];
    const slow = (name: string, ms: number) => async () => {
      events.push(`${name} start`);
      await sleep(ms);
      events.push(`${name} end`);
    };
    core.defer("below", slow("below", 1));
    core.defer("a", slow("a", 100));
    core.defer("b", slow("b", 10), { together: true });
    await core.close();
    expect(events).toEqual(["a start", "b start", "b end", "a end", "below start", "below end"]);
  });

  it("gives up on a releaser that outlives the grace period and goes on with the rest", async () => {
    const core = createCore(testConfig({ WEBHOOKS_SHUTDOWN_GRACE_MS: "200" }), { database: null, logger: silent });
    let below = false;
    core.defer("below", async () => void (below = true));
    core.defer("hangs", () => new Promise<void>(() => {}), { withinGrace: true });
    const t0 = Date.now();
    await core.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(below).toBe(true);
  });

  it("passes every releaser the grace deadline", async () => {
    const core = createCore(testConfig({ WEBHOOKS_SHUTDOWN_GRACE_MS: "5000" }), { database: null, logger: silent });
    let given = 0;
    core.defer("r", async (deadline) => void (given = deadline));
    const t0 = Date.now();
    await core.close();
    expect(given).toBeGreaterThanOrEqual(t0 + 5000);
    expect(given).toBeLessThan(t0 + 6000);
  });

  it("logs a failing releaser and goes on; a failing database server stop rejects close() after the rest", async () => {
    const stopped: string[] = [];
    const core = createCore(testConfig(), {
      database: {
        url: "postgres://nobody@127.0.0.1:1/none",
        stop: async () => {
          stopped.push("server");
          throw new Error("pg_ctl failed");
        },
      },
      logger: silent,
    });
    core.defer("fails", async () => {
      stopped.push("fails");
      throw new Error("boom");
    });
    await expect(core.close()).rejects.toThrow("pg_ctl failed");
    expect(stopped).toEqual(["fails", "server"]);
  });

  it("without a database, builds the sending parts and refuses every query instead of connecting", async () => {
    const core = createCore(testConfig(), { database: null, logger: silent });
    expect(core.databaseUrl).toBeNull();
    const { ctx } = core.sending();
    expect(core.sending().ctx).toBe(ctx);
    expect(() => core.conn.sql`select 1`).toThrow(/without a database/);
    expect(() => core.conn.db.selectFrom("webhooks.subscriptions")).toThrow(/without a database/);
    await core.close();
  });
});
