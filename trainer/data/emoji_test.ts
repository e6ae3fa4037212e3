import assert from "node:assert/strict";
import { join } from "node:path";
import { decodePngInput } from "../../shared/png_input.ts";
import {
  EMOJI_CATEGORIES,
  EMOJI_HELD_OUT_EVERY,
  ensureEmojiPackages,
  heldOutBases,
  listEmoji,
  loadEmoji,
} from "./emoji.ts";
import { DataError } from "./dataset.ts";

const SAMPLE = new URL("../../fixtures/emoji-sample", import.meta.url).pathname;

Deno.test("emoji sample: both sets, 9 categories (Component dropped), skin tones, split by base", async () => {
  const items = await listEmoji(SAMPLE);
  assert.deepEqual(new Set(items.map((i) => i.set)), new Set(["google", "twitter"]));
  // Every category but Component is present; the sample's Component swatch is dropped.
  assert.deepEqual(
    [...new Set(items.map((i) => i.label))].sort((a, b) => a - b),
    EMOJI_CATEGORIES.map((_, i) => i),
  );
  const raw = JSON.parse(
    await Deno.readTextFile(join(SAMPLE, "emoji-datasource-google", "emoji.json")),
  ) as { unified: string; category: string }[];
  const component = raw.filter((e) => e.category === "Component").map((e) => e.unified);
  assert.equal(component.length, 1, "the sample has one Component entry");
  assert.ok(items.every((i) => i.base !== component[0]), "Component dropped");
  // A base with skin-tone variants contributes one image per variant, in both sets.
  const perBase = new Map<string, number>();
  for (const i of items) perBase.set(i.base, (perBase.get(i.base) ?? 0) + 1);
  assert.ok([...perBase.values()].some((n) => n >= 12), "variants counted with their base");
  // Held out: every tenth base of a category (the sample has 10 flags → exactly one held out).
  const held = heldOutBases(items);
  const flags = EMOJI_CATEGORIES.indexOf("Flags");
  const flagBases = [...new Set(items.filter((i) => i.label === flags).map((i) => i.base))];
  assert.equal(flagBases.length, EMOJI_HELD_OUT_EVERY);
  assert.deepEqual([...held], [flagBases[EMOJI_HELD_OUT_EVERY - 1]]);

  const { train, test } = await loadEmoji({ packages: SAMPLE });
  assert.equal(train.count + test.count, items.length);
  assert.equal(test.count, 2, "the held-out flag in both sets");
  assert.ok(test.labels!.every((l) => l === flags));
  assert.equal(train.channels, 3);
  assert.equal(train.imageSize, 32);
  assert.deepEqual(train.labelNames, EMOJI_CATEGORIES);
  // Class-major order.
  for (let k = 1; k < train.count; k++) assert.ok(train.labels![k] >= train.labels![k - 1]);
});

Deno.test("emoji: 64 → 32 is the 2×2 box filter of the alpha-over-black pixels", async () => {
  const items = await listEmoji(SAMPLE);
  const first = items.find((i) => i.set === "twitter")!;
  const rgb = decodePngInput(await Deno.readFile(first.file));
  assert.equal(rgb.width, 64);
  const { train } = await loadEmoji({ packages: SAMPLE });
  const k = items.filter((i) => i.label === first.label).findIndex((i) => i.file === first.file);
  const byClass = items.filter((i) => i.label < first.label).length;
  const img = train.images.subarray((byClass + k) * 3072, (byClass + k + 1) * 3072);
  for (const [y, x] of [[16, 16], [5, 20], [31, 0]]) {
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
        s += rgb.data[((2 * y + dy) * 64 + 2 * x + dx) * 3 + c];
      }
      const want = Math.round((s / 4) * 255) / 127.5 - 1;
      assert.ok(Math.abs(img[(y * 32 + x) * 3 + c] - want) < 1e-6, `pixel ${y},${x},${c}`);
    }
  }
  // Grayscale on request, and the image size follows imageSize.
  const gray = await loadEmoji({ packages: SAMPLE, channels: 1, imageSize: 16 });
  assert.equal(gray.train.images.length, gray.train.count * 256);
});

Deno.test("emoji: without the packages and without network, one line naming what to install", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The real npm, pointed at a registry nothing answers (a closed loopback port), no retries.
    const offline = {
      npm_config_registry: "http://127.0.0.1:9/",
      npm_config_fetch_retries: "0",
      npm_config_cache: join(dir, "npm-cache"),
    };
    await assert.rejects(
      () => ensureEmojiPackages(join(dir, "prefix"), offline),
      (e: Error) => {
        assert.ok(e instanceof DataError);
        assert.equal(e.message.split("\n").length, 1);
        assert.match(e.message, /emoji-datasource-google@16\.0\.0/);
        assert.match(e.message, /npm install --prefix .* emoji-datasource-twitter@16\.0\.0/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
