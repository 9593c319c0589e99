// The admin UI in a real browser: Debian's Chromium driven by playwright-core, against the app
// listening on a port, with a dispatcher and a real receiver. The main flows (sign in, create a
// webhook and send a test, toggle it, open a failed delivery and retry it, bulk replay with the
// count shown first, dark mode), with the
// CSP enforced (any violation fails the test) and axe-core on every page visited.
// Skipped, saying so, when /usr/bin/chromium is absent. PGW_SCREENSHOTS=1 saves docs/admin-*.png.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startApi, type Api } from "./helpers/api";
import { runDispatcher, type RunningDispatcher } from "./helpers/pipeline";
import { startReceiver, type Receiver } from "./helpers/receiver";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];
const SCREENSHOTS = process.env.PGW_SCREENSHOTS === "1";
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser) console.warn(`admin browser tests skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);
const describeBrowser = haveBrowser ? describe : describe.skip;

jest.setTimeout(60000);

describeBrowser("the admin UI in Chromium", () => {
  let api: Api;
  let receiver: Receiver;
  let dispatcher: RunningDispatcher;
  let browser: Browser;
  let page: Page;
  let base: string;
  const cspViolations: string[] = [];
  const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

  beforeAll(async () => {
    api = await startApi();
    receiver = await startReceiver({ status: 200, body: "ok" });
    dispatcher = await runDispatcher(api.db.url);
    base = await api.app.listen({ port: 0, host: "127.0.0.1" });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    page = await browser.newPage();
    page.setDefaultTimeout(10000);
    page.on("console", (m) => {
      if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text());
    });
  });
  afterAll(async () => {
    await browser?.close();
    await dispatcher?.stop();
    await receiver?.close();
    await api?.close();
  });
  afterEach(() => {
    expect(cspViolations).toEqual([]);
  });

  /** axe-core on the page as it is now: no serious or critical violation. Run through CDP, so the page's CSP does not apply. */
  async function checkAccessibility(name: string): Promise<void> {
    await page.evaluate(`${axeSource};0`);
    const violations = (await page.evaluate(async () => {
      const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe;
      const r = await axe.run();
      return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}, ${v.nodes.length} nodes)`);
    })) as string[];
    expect({ page: name, violations }).toEqual({ page: name, violations: [] });
    if (SCREENSHOTS) {
      mkdirSync("docs", { recursive: true });
      await page.screenshot({ path: join("docs", `admin-${name}.png`), fullPage: true });
    }
  }

  it("signs in with an API key", async () => {
    await page.goto(`${base}/admin`);
    await expect(page.getByRole("heading", { name: "Sign in" }).isVisible()).resolves.toBe(true);
    await checkAccessibility("signin");
    await page.getByLabel("API key").fill(api.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${base}/admin`);
    await expect(page.getByRole("heading", { name: "Overview" }).isVisible()).resolves.toBe(true);
    await checkAccessibility("overview");
    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await page.getByRole("heading", { name: "Webhooks" }).waitFor();
  });

  it("creates a webhook and sends a test, the answer shown in place", async () => {
    await page.getByRole("link", { name: "New webhook" }).click();
    await page.getByLabel("Name", { exact: true }).fill("CRM sync");
    await page.getByLabel("URL").fill(`${receiver.url}/crm`);
    await page.getByLabel("Retry schedule").fill("30s,5m,1h");
    await page.getByLabel("Attempts at most").fill("4");
    // htmx refreshes the preview from the real policy code as it is typed.
    await page.getByText("gives up after about 1h 5m").waitFor();
    await checkAccessibility("webhook-form");
    await page.getByRole("button", { name: "Create webhook" }).click();
    await page.getByRole("heading", { name: "CRM sync" }).waitFor();
    await checkAccessibility("webhook");
    await page.getByRole("button", { name: "Send test" }).click();
    await page.locator("#test-result").getByText("Delivered").waitFor();
    await expect(page.locator("#test-result").textContent()).resolves.toMatch(/webhook-signature: v1,\*\*\*\*/);
    expect(receiver.requests).toHaveLength(1);
    expect(page.url()).toMatch(/\/admin\/webhooks\/[0-9a-f-]{36}/);
  });

  it("toggles a webhook in place from the list", async () => {
    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await page.getByRole("button", { name: "Pause CRM sync" }).click();
    await page.getByRole("button", { name: "Enable CRM sync" }).waitFor();
    expect(page.url()).toBe(`${base}/admin/webhooks`);
    await expect(page.getByText("disabled by a user").isVisible()).resolves.toBe(true);
    await checkAccessibility("webhooks");
    await page.getByRole("button", { name: "Enable CRM sync" }).click();
    await page.getByRole("button", { name: "Pause CRM sync" }).waitFor();
  });

  it("previews a payload template in place, and lists the event catalog", async () => {
    await page.goto(`${base}/admin/webhooks/new`);
    await page.getByLabel("Payload", { exact: true }).selectOption("template");
    await page.getByLabel("JSONata template (for the template payload)").fill('{"text": "New " & type}');
    await page.getByLabel("*", { exact: true }).uncheck();
    await page.getByLabel("Other event types or patterns").fill("orders.paid");
    await page.getByRole("button", { name: "Preview payload" }).click();
    // htmx swaps the preview in; the page stays the form (nothing saved).
    await page.locator("#payload-preview pre").getByText('{"text":"New orders.paid"}').waitFor();
    expect(page.url()).toBe(`${base}/admin/webhooks/new`);
    await checkAccessibility("webhook-form-preview");
    await page.getByRole("link", { name: "Events", exact: true }).click();
    await page.getByRole("heading", { name: "Event catalog" }).waitFor();
    await checkAccessibility("events");
    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
  });

  it("opens a failed delivery and retries it", async () => {
    receiver.respond({ status: 500, body: "boom" });
    await page.getByRole("link", { name: "CRM sync" }).click();
    await page.getByRole("button", { name: "Send test" }).click();
    await page.locator("#test-result").getByText("Failed").waitFor();
    receiver.respond({ status: 200, body: "ok now" });
    await page.getByRole("link", { name: "Deliveries", exact: true }).click();
    await page.getByLabel("Status").selectOption("failed");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/status=failed/);
    await checkAccessibility("deliveries");
    await page.locator("#delivery-list tbody a").first().click();
    await page.getByText("boom").first().waitFor({ state: "attached" });
    await checkAccessibility("delivery");
    await page.getByRole("button", { name: "Retry now" }).click();
    await page.getByText("Queued: it goes out within seconds.").waitFor();
    for (let i = 0; i < 40 && !(await page.getByText("succeeded").first().isVisible()); i++) {
      await page.waitForTimeout(250);
      await page.reload();
    }
    await expect(page.getByText("succeeded").first().isVisible()).resolves.toBe(true);
  });

  it("replays the failed deliveries of a filter, showing the count first", async () => {
    receiver.respond({ status: 503, body: "down" });
    await page.getByRole("link", { name: "Webhooks", exact: true }).click();
    await page.getByRole("link", { name: "CRM sync" }).click();
    for (let i = 0; i < 2; i++) {
      await page.reload(); // a fresh page has no result yet: the wait below is for this send's
      await page.getByRole("button", { name: "Send test" }).click();
      await page.locator("#test-result").getByText("Failed").waitFor();
      await page.locator("#test-result").getByText("status 503").waitFor();
    }
    receiver.respond({ status: 200, body: "back" });
    const sentBefore = receiver.requests.length;
    await page.goto(`${base}/admin/deliveries?status=failed`);
    await page.getByRole("link", { name: "Replay the matching deliveries…" }).click();
    // The two just failed, and any earlier failure still failed (the dispatcher may be retrying the first one's replay).
    const count = Number(/^(\d+) deliveries match$/.exec((await page.locator("#replay-count").textContent()) ?? "")?.[1]);
    expect(count).toBeGreaterThanOrEqual(2);
    await checkAccessibility("replay");
    await page.getByLabel("At most this many per second").fill("10");
    await page.getByRole("button", { name: `Replay ${count} deliveries` }).click();
    await page.getByText(`${count} of ${count} handled, ${count} queued — done.`).waitFor();
    await checkAccessibility("replay-progress");
    // The dispatcher sends both again, with their original event ids.
    await receiver.waitFor(sentBefore + 2, 15000);
  });

  it("follows the system's dark mode and has a toggle", async () => {
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(`${base}/admin/webhooks`);
    expect(await background()).toBe("rgb(13, 17, 23)");
    await page.emulateMedia({ colorScheme: "light" });
    expect(await background()).toBe("rgb(255, 255, 255)");
    await page.getByRole("button", { name: "Dark" }).click();
    await page.waitForLoadState();
    expect(await background()).toBe("rgb(13, 17, 23)");
    await expect(page.getByRole("button", { name: "Dark" }).getAttribute("aria-pressed")).resolves.toBe("true");
    await checkAccessibility("webhooks-dark");
    await page.getByRole("button", { name: "System" }).click();
    await page.waitForLoadState();
    expect(await background()).toBe("rgb(255, 255, 255)");
  });
});
