/**
 * The HTML page in a real browser: playwright-core driving Debian's /usr/bin/chromium against a
 * `deno serve` subprocess. Skipped, with the reason printed, when chromium is not installed. The
 * second test drives the drawing pad with real mouse strokes (/denoise, /inpaint) and the
 * animation (format=apng).
 */
import assert from "node:assert/strict";
import { decode, decodeApng } from "fast-png";
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
    const server = await startServer({
      MODEL: await writeTinyModel({ T: 50, steps: 3, nullClassSteps: 5 }),
    });
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

      // Controls: a fixed seed, one image, a label, a spacing; the card's defaults prefilled,
      // steps left to the server (its placeholder says the card's, null class included).
      assert.equal(await page.inputValue("#spacing"), "linspace");
      assert.equal(await page.inputValue("#steps"), "");
      assert.equal(await page.getAttribute("#steps", "placeholder"), "3 (null class 5)");
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
        ["42", null, "trailing", "1", "two"],
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

/** A headless Chromium on a fresh profile (playwright's persistent context = --user-data-dir). */
async function launchBrowser() {
  const profile = await Deno.makeTempDir({ prefix: "chromium-profile-" });
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
  return {
    browser,
    close: async () => {
      await browser.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test({
  name: "the page animates, denoises a digit drawn with the mouse, and inpaints a painted region",
  ignore: missing !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const server = await startServer({ MODEL: await writeTinyModel({ T: 50, steps: 3 }) });
    const { browser, close } = await launchBrowser();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(15_000);
      const problems: string[] = [];
      page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
      page.on("pageerror", (e) => problems.push(e.message));
      page.on("response", (r) => r.status() >= 400 && problems.push(`${r.status()} ${r.url()}`));
      // Responses (and request bodies) as the page got and sent them, through a pass-through
      // route: Chromium gives playwright no body for responses the page reads as blobs.
      const seen: { path: string; url: string; post: Uint8Array | null; body: Uint8Array }[] = [];
      await page.route(/\/(generate|denoise|inpaint)\b/, async (route) => {
        const response = await route.fetch();
        const body = new Uint8Array(await response.body());
        const req = route.request();
        const post = req.postDataBuffer();
        seen.push({
          path: new URL(req.url()).pathname,
          url: req.url(),
          post: post ? new Uint8Array(post) : null,
          body,
        });
        await route.fulfill({ response });
      });
      const lastOf = (path: string) => seen.filter((x) => x.path === path).at(-1)!;
      await page.goto(`${server.url}/`);
      type Img = { src: string; complete: boolean; naturalWidth: number };
      type Doc = { document: { getElementById(id: string): Img } };
      const loadedAfter = (id: string, old: string) =>
        page.waitForFunction(([id, old]) => {
          const img = (globalThis as unknown as Doc).document.getElementById(id);
          return img.src.startsWith("blob:") && img.src !== old && img.complete &&
            img.naturalWidth > 0;
        }, [id, old]);
      const src = (id: string) =>
        page.locator(`#${id}`).evaluate((img) => (img as unknown as Img).src);
      await loadedAfter("grid", "");

      // Animate: the grid comes as an APNG (x̂₀ per step) and the browser shows it.
      const apng = page.waitForResponse((r) => r.url().includes("format=apng"));
      let old = await src("grid");
      await page.check("#animate");
      await page.click("#go");
      const ar = await apng;
      assert.equal(ar.status(), 200);
      assert.equal(ar.headers()["content-type"], "image/apng");
      await loadedAfter("grid", old);
      assert.equal(decodeApng(lastOf("/generate").body).frames.length, 3);
      await loadedAfter("grid", old);
      await page.uncheck("#animate");

      // Draw a stroke (a rough "1") with the real mouse, then denoise it.
      await page.locator("#pad").scrollIntoViewIfNeeded();
      const box = (await page.locator("#pad").boundingBox())!;
      const stroke = async (points: [number, number][]) => {
        await page.mouse.move(box.x + points[0][0], box.y + points[0][1]);
        await page.mouse.down();
        for (const [x, y] of points.slice(1)) {
          await page.mouse.move(box.x + x, box.y + y, { steps: 5 });
        }
        await page.mouse.up();
      };
      await stroke([[140, 40], [135, 120], [140, 200], [142, 250]]);
      const denoised = page.waitForResponse((r) => new URL(r.url()).pathname === "/denoise");
      old = await src("result");
      await page.click("#send");
      const dr = await denoised;
      assert.equal(dr.status(), 200);
      const sent = dr.request();
      assert.equal(sent.method(), "POST");
      assert.equal(sent.headers()["content-type"], "image/png");
      assert.equal(new URL(sent.url()).searchParams.get("strength"), "0.5");
      // What was sent is the pad: black, with white along the stroke.
      const pad = decode(lastOf("/denoise").post!);
      assert.deepEqual([pad.width, pad.height], [280, 280]);
      const px = (x: number, y: number) => pad.data[(y * 280 + x) * pad.channels];
      assert.equal(px(138, 120), 255);
      assert.equal(px(30, 30), 0);
      await loadedAfter("result", old);
      assert.match(
        await page.textContent("#pad-status") ?? "",
        /^denoised · seed \d+ · .*model;dur=/,
      );

      // Inpaint: a fresh sample on the pad, paint its right side, send image + mask.
      const sample = page.waitForResponse((r) => new URL(r.url()).pathname === "/generate");
      await page.selectOption("#mode", "inpaint");
      const sr = await sample;
      assert.equal(sr.status(), 200);
      await page.locator("#pad-status", { hasText: "paint the part" }).waitFor();
      await stroke([[230, 10], [230, 270]]);
      const inpainted = page.waitForResponse((r) => new URL(r.url()).pathname === "/inpaint");
      old = await src("result");
      await page.click("#send");
      const ir = await inpainted;
      assert.equal(ir.status(), 200);
      const body = new TextDecoder("latin1").decode(lastOf("/inpaint").post!);
      assert.match(body, /name="image"; filename="image.png"/);
      assert.match(body, /name="mask"; filename="mask.png"/);
      await loadedAfter("result", old);
      // The tiny model is 8×8 (35 pad pixels each; images at scale 16). The 36-px stroke at
      // x = 230 covers the centre of column 6 only; columns 0…4 come back unchanged.
      const base = decode(lastOf("/generate").body);
      const out = decode(lastOf("/inpaint").body);
      assert.deepEqual([out.width, base.width], [128, 128]);
      let changedKept = 0, changedPainted = 0;
      for (let y = 0; y < 128; y += 16) {
        for (let x = 0; x < 128; x += 16) {
          const d =
            out.data[(y * 128 + x) * out.channels] !== base.data[(y * 128 + x) * base.channels];
          if (x < 5 * 16) changedKept += d ? 1 : 0;
          else if (x === 6 * 16) changedPainted += d ? 1 : 0;
        }
      }
      assert.equal(changedKept, 0);
      assert.ok(changedPainted > 0, "the painted region was not regenerated");
      assert.deepEqual(problems, []);
    } finally {
      await close();
      await server.close();
    }
  },
});
