import assert from "node:assert/strict";
import { join } from "node:path";
import { paramSpecs } from "../network/unet.ts";
import {
  type CheckpointData,
  CheckpointError,
  type CheckpointMeta,
  hasCheckpoint,
  osReason,
  packTensors,
  readCheckpoint,
  RunWriteError,
  unpackTensors,
  writeCheckpoint,
} from "./checkpoint.ts";
import { tinyUNet } from "../export/test_models.ts";

const unet = tinyUNet();

function tensors(offset: number): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  let k = 0;
  for (const s of paramSpecs(unet)) {
    const size = s.shape.reduce((a, b) => a * b, 1);
    m.set(s.name, Float32Array.from({ length: size }, () => offset + 1e-3 * k++));
  }
  return m;
}

function data(step: number): CheckpointData {
  const meta: CheckpointMeta = {
    format: "ddpm-edge/checkpoint@1",
    step,
    unet,
    schedule: { kind: "linear", T: 1000 },
    labels: null,
    dataset: "mnist",
    batch: 8,
    wallTimeSeconds: 1.5,
    lastLoss: 0.5,
    backend: "wasm",
    command: "deno run -A trainer/train.ts --data mnist",
    commands: ["deno run -A trainer/train.ts --data mnist"],
    config: { any: "thing" },
    adamStep: step,
    emaDecay: 0.999,
    epochs: 0.1,
    rng: {
      sampler: { epochRng: { s: [1, 2, 3, 4], spare: null }, epoch: 0, pos: 3 },
      noise: { s: [5, 6, 7, 8], spare: 0.25 },
    },
    paramCount: 1,
    savedAt: new Date(0).toISOString(),
  };
  return {
    meta,
    params: tensors(step),
    ema: tensors(step + 1),
    adamM: tensors(step + 2),
    adamV: tensors(step + 3),
  };
}

Deno.test("pack/unpack: little-endian float32 in paramSpecs order", () => {
  const t = tensors(0);
  const bytes = packTensors(unet, t);
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const first = paramSpecs(unet)[0].name;
  assert.equal(dv.getFloat32(4, true), t.get(first)![1]);
  assert.deepEqual(unpackTensors(unet, bytes), t);
  assert.throws(() => unpackTensors(unet, bytes.subarray(4)), CheckpointError);
});

Deno.test("write/read round trip; a newer checkpoint replaces the old; leftovers cleaned", async () => {
  const run = await Deno.makeTempDir();
  try {
    assert.equal(await hasCheckpoint(run), false);
    await assert.rejects(readCheckpoint(run), CheckpointError);
    await writeCheckpoint(run, data(10));
    const a = await readCheckpoint(run);
    assert.equal(a.meta.step, 10);
    assert.deepEqual(a.params, tensors(10));
    assert.deepEqual(a.adamV, tensors(13));
    assert.deepEqual(a.meta.rng.noise.spare, 0.25);
    // A half-written temporary (as after kill -9) does not disturb reading, and is removed later.
    await Deno.mkdir(join(run, "checkpoints", "step-00000020.999.tmp"));
    await Deno.writeTextFile(join(run, "checkpoints", "step-00000020.999.tmp", "meta.json"), "{");
    assert.equal((await readCheckpoint(run)).meta.step, 10);
    await writeCheckpoint(run, data(20));
    const b = await readCheckpoint(run);
    assert.equal(b.meta.step, 20);
    assert.deepEqual(b.ema, tensors(21));
    const left = [];
    for await (const e of Deno.readDir(join(run, "checkpoints"))) left.push(e.name);
    assert.deepEqual(left, ["step-00000020"]);
    // The fixed file names of the format.
    const files = [];
    for await (const e of Deno.readDir(join(run, "checkpoint"))) files.push(e.name);
    assert.deepEqual(files.sort(), [
      "adam_m.bin",
      "adam_v.bin",
      "ema.bin",
      "meta.json",
      "params.bin",
    ]);
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("invalid meta.json gives a CheckpointError", async () => {
  const run = await Deno.makeTempDir();
  try {
    await writeCheckpoint(run, data(1));
    await Deno.writeTextFile(join(run, "checkpoint", "meta.json"), JSON.stringify({ step: -1 }));
    await assert.rejects(
      readCheckpoint(run),
      (e: Error) => e instanceof CheckpointError && /invalid/.test(e.message),
    );
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir), (e) => e.name)).sort();
}

Deno.test("a write that fails after its directory is complete: previous checkpoint stays linked, nothing left", async () => {
  const run = await Deno.makeTempDir();
  try {
    await writeCheckpoint(run, data(10));
    // Something in the way of the new link (a non-empty directory where it is built).
    const blocker = join(run, `checkpoint.${Deno.pid}.tmp`);
    await Deno.mkdir(join(blocker, "x"), { recursive: true });
    const err = await writeCheckpoint(run, data(20)).then(() => null, (e) => e);
    assert.ok(err instanceof RunWriteError, String(err));
    assert.match(
      err.message,
      new RegExp(`^cannot write checkpoint to ${run}/checkpoints/step-00000020: file exists$`),
    );
    assert.equal(await Deno.readLink(join(run, "checkpoint")), "checkpoints/step-00000010");
    assert.deepEqual(await entries(join(run, "checkpoints")), ["step-00000010"]);
    assert.deepEqual((await readCheckpoint(run)).params, tensors(10));
    // Once the obstacle is gone the next write succeeds.
    assert.equal(await Deno.lstat(blocker).then(() => true, () => false), false);
    await writeCheckpoint(run, data(20));
    assert.equal((await readCheckpoint(run)).meta.step, 20);
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("re-checkpointing the step already on disk never removes the live directory first", async () => {
  const run = await Deno.makeTempDir();
  try {
    await writeCheckpoint(run, data(10));
    const again = data(10);
    again.meta.wallTimeSeconds = 99;
    await writeCheckpoint(run, again);
    assert.equal(await Deno.readLink(join(run, "checkpoint")), "checkpoints/step-00000010.1");
    assert.deepEqual(await entries(join(run, "checkpoints")), ["step-00000010.1"]);
    assert.equal((await readCheckpoint(run)).meta.wallTimeSeconds, 99);
    await writeCheckpoint(run, data(11));
    assert.deepEqual(await entries(join(run, "checkpoints")), ["step-00000011"]);
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("osReason: the OS reason without Deno's suffix", () => {
  const e = new Error("No space left on device (os error 28): open '/x/y'");
  assert.equal(osReason(e), "no space left on device");
  assert.equal(osReason(new Error("Read-only file system (os error 30)")), "read-only file system");
});
