/**
 * The HTML page in a real browser: playwright-core driving Debian's /usr/bin/chromium against a
 * `deno serve` subprocess. Skipped, with the reason printed, when chromium is not installed.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { startServer, writeTinyModel } from "./testing.ts";

const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";
const missing = await Deno.stat(CHROMIUM).then(() => null, () => `${CHROMIUM} not found`);
if (missing) console.log(`browser_test skipped: ${missing} (apt-get install -y chromium)`);

Deno.test({
  name: "the page shows a grid, takes controls, and regenerates on click under its CSP",
  ignore: missing !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const server = await startServer({ MODEL: await writeTinyModel({ T: 50, steps: 3 }) });
    const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
    // A persistent context on a fresh profile dir is playwright's form of --user-data-dir.
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(10_000);
      const problems: string[] = [];
      page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
      page.on("pageerror", (e) => problems.push(e.message));
      page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
      const generated: URL[] = [];
      page.on("request", (r) => {
        const u = new URL(r.url());
        if (u.pathname === "/generate") generated.push(u);
      });
      await page.goto(`${server.url}/`);

      // Page-side functions see the DOM through a minimal type (no DOM lib in Deno's check);
      // they must be functions, not strings: the page's CSP forbids eval, which strings need.
      type Img = { src: string; complete: boolean; naturalWidth: number };
      const seedOf = () => page.inputValue("#seed");
      const width = () =>
        page.locator("#grid").evaluate((img) => (img as unknown as Img).naturalWidth);
      const src = () => page.locator("#grid").evaluate((img) => (img as unknown as Img).src);
      /** Wait for a new image (src other than `old`) to be decoded. */
      const loadedAfter = (old: string) =>
        page.waitForFunction((old) => {
          const img = (globalThis as unknown as {
            document: { getElementById(id: string): Img };
          }).document.getElementById("grid");
          return img.src.startsWith("blob:") && img.src !== old && img.complete &&
            img.naturalWidth > 0;
        }, old);
      await loadedAfter("");
      const first = await seedOf();
      assert.match(first, /^\d+$/);
      // n = 16 at scale 4: 4 × 4 tiles of 32 px with 4-px gaps.
      assert.equal(await width(), 4 * 32 + 3 * 4);
      assert.equal(
        await page.textContent("#model"),
        "tiny-cond · random weights (test fixture) · linear schedule, T = 50",
      );
      assert.deepEqual(await page.locator("#label option").allTextContents(), [
        "(none)",
        "zero",
        "one",
        "two",
      ]);

      // Click → a new random seed and a new image.
      let old = await src();
      await page.click("#grid");
      await loadedAfter(old);
      assert.notEqual(await seedOf(), first);

      // Controls: a fixed seed, one image, a label, a spacing; the card's defaults prefilled.
      assert.equal(await page.inputValue("#spacing"), "linspace");
      await page.fill("#seed", "42");
      await page.fill("#n", "1");
      await page.selectOption("#label", "two");
      await page.selectOption("#spacing", "trailing");
      old = await src();
      await page.click("#go");
      await loadedAfter(old);
      assert.equal(await seedOf(), "42");
      assert.equal(await width(), 32);
      assert.match(await page.textContent("#status") ?? "", /^seed 42 · .*model;dur=/);
      const q = generated.at(-1)!.searchParams;
      assert.deepEqual(
        ["seed", "steps", "spacing", "n", "label"].map((k) => q.get(k)),
        ["42", "3", "trailing", "1", "two"],
      );

      // A bad value shows the server's error.
      await page.fill("#steps", "999");
      await page.click("#go");
      await page.locator("#status", { hasText: "error 400" }).waitFor();
      assert.match(await page.textContent("#status") ?? "", /steps: must be ≤ 50/);

      // The only failure is the 400 asked for above (a network error and its console line).
      assert.deepEqual(problems.filter((p) => !/status of 400|^400 .*steps=999/.test(p)), []);
      assert.equal(problems.length, 2, problems.join("\n"));
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
