/**
 * WebGPU against wasm on the same inputs. Runs wherever navigator.gpu gives an adapter (with
 * Mesa's lavapipe a software Vulkan one does: `apt-get install mesa-vulkan-drivers`); skipped
 * with the reason printed otherwise.
 */
import assert from "node:assert/strict";
import { Rng } from "../shared/rng.ts";
import { createEngine } from "./engine.ts";
import { loadModel } from "./model.ts";
import { generate } from "./sampler.ts";
import { writeTinyModel } from "./testing.ts";

// Vulkan loaders want a private runtime dir.
if (!Deno.env.get("XDG_RUNTIME_DIR")) {
  Deno.env.set("XDG_RUNTIME_DIR", await Deno.makeTempDir({ prefix: "xdg-" }));
}

async function adapterOrReason(): Promise<GPUAdapter | string> {
  if (!("gpu" in navigator)) return "navigator.gpu is missing";
  try {
    return await navigator.gpu.requestAdapter() ?? "navigator.gpu.requestAdapter() gave null";
  } catch (e) {
    return `requestAdapter failed: ${(e as Error).message}`;
  }
}

const adapter = await adapterOrReason();
if (typeof adapter === "string") console.log(`webgpu_test skipped: ${adapter}`);

Deno.test({
  name: "WebGPU and wasm give the same ε and the same samples (within tolerance)",
  ignore: typeof adapter === "string",
  fn: async () => {
    console.log(`adapter: ${(adapter as GPUAdapter).info.description}`);
    const model = await loadModel(await writeTinyModel({ T: 50 }));
    const wasm = await createEngine(model, { backend: "wasm", threads: 1 });
    const gpu = await createEngine(model, { backend: "webgpu" });
    assert.equal(gpu.backend, "webgpu");
    const x = new Rng(5).fillNormal(new Float32Array(4 * 64));
    const y = Int32Array.of(0, 1, 2, 3);
    const a = await wasm.forward(x, 4, 25, y);
    const b = await gpu.forward(x, 4, 25, y);
    let maxDiff = 0, maxAbs = 0;
    for (let i = 0; i < a.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      maxAbs = Math.max(maxAbs, Math.abs(a[i]));
    }
    console.log(
      `max |ε_wasm − ε_webgpu| = ${maxDiff.toExponential(2)} (max |ε| ${maxAbs.toFixed(2)})`,
    );
    assert.ok(maxAbs > 0.1, "a non-trivial output");
    assert.ok(maxDiff < 1e-3 * Math.max(1, maxAbs), `ε differs by ${maxDiff}`);
    // Whole chains agree closely too (batch 4 again: lavapipe compiles kernels per shape).
    const o = { seed: 3, steps: 3, eta: 0, n: 4, label: 1, guidance: 1 };
    const sa = await generate(wasm, o), sb = await generate(gpu, o);
    let d = 0;
    for (let i = 0; i < sa.length; i++) d = Math.max(d, Math.abs(sa[i] - sb[i]));
    console.log(`max sample difference ${d.toExponential(2)}`);
    assert.ok(d < 1e-2, `samples differ by ${d}`);
  },
});
