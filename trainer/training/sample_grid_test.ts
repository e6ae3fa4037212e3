import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { decode } from "fast-png";
import type { UNetConfig } from "../../shared/model_card.ts";
import { makeSchedule } from "../../shared/schedule.ts";
import { initBackend } from "../backends/backend.ts";
import { forward, initParams } from "../network/tfjs_ops.ts";
import {
  nchwToNhwc,
  nhwcToNchw,
  sampleGrid,
  tfjsEpsModel,
  writeSampleGrid,
} from "./sample_grid.ts";
import { tinyUNet } from "../export/test_models.ts";

await initBackend({ backend: "wasm", threads: 1 });

const cfg = (o: Partial<UNetConfig>): UNetConfig => tinyUNet({ attention: false, ...o });

/** Params with every weight random (initParams zero-inits the output conv). */
function randomParams(unet: UNetConfig): Record<string, tf.Variable> {
  const p = initParams(unet, 3);
  for (const v of Object.values(p)) v.assign(tf.randomUniform(v.shape, -0.2, 0.2, "float32", 1));
  return p;
}

Deno.test("NCHW ↔ NHWC round trip", () => {
  const x = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
  const h = nchwToNhwc(x, 2, 3, 4);
  assert.equal(h[1], 4); // image 0, pixel 0, channel 1
  assert.deepEqual(nhwcToNchw(h, 2, 3, 4), x);
});

Deno.test("tfjsEpsModel on RGB: NCHW in/out equals the NHWC forward", async () => {
  const unet = cfg({ inChannels: 3 });
  const p = randomParams(unet);
  const n = 2, hw = 64;
  const x = Float32Array.from({ length: n * 3 * hw }, (_, i) => Math.sin(i));
  const eps = await tfjsEpsModel(p, unet, n, null)(x, 500);
  const ref = tf.tidy(() =>
    forward(p, unet, tf.tensor4d(nchwToNhwc(x, n, 3, hw), [n, 8, 8, 3]), tf.tensor1d([500, 500]))
      .dataSync()
  );
  assert.deepEqual(Array.from(eps), Array.from(nhwcToNchw(ref, n, 3, hw)));
  Object.values(p).forEach((v) => v.dispose());
});

Deno.test("grids: n images as PNG, conditional = one row of 10 per class; same seed same grid", async () => {
  const sched = makeSchedule("linear", 100);
  const u = cfg({});
  const p = randomParams(u);
  const g = await sampleGrid(p, u, sched, { count: 9, steps: 5, seed: 1 });
  const png = decode(g.png);
  assert.equal(g.n, 9);
  assert.equal(png.width, 3 * 16 + 2 * 2); // 3 tiles of 8 px ×2, 2-px gaps
  assert.ok(g.images.every((v) => v >= -1 && v <= 1));
  const again = await sampleGrid(p, u, sched, { count: 9, steps: 5, seed: 1 });
  assert.deepEqual(again.images, g.images);

  const c = cfg({ numClasses: 3 });
  const pc = randomParams(c);
  const gc = await sampleGrid(pc, c, sched, { count: 64, steps: 3, seed: 1, guidance: 2 });
  assert.equal(gc.n, 30);
  assert.equal(gc.cols, 10);
  assert.equal(decode(gc.png).height, 3 * 16 + 2 * 2);

  const run = await Deno.makeTempDir();
  const file = await writeSampleGrid(run, 1200, g.png);
  assert.ok(file.endsWith("samples/step-001200.png"));
  assert.deepEqual(await Deno.readFile(file), g.png);
  await Deno.remove(run, { recursive: true });
  [...Object.values(p), ...Object.values(pc)].forEach((v) => v.dispose());
});
