/**
 * Classifier checkpoints: `<run>/checkpoint/` holds `meta.json` (step, network, schedule,
 * labels, the full configuration, the RNG states, …) and `params.bin`, `ema.bin`, `adam_m.bin`,
 * `adam_v.bin` (little-endian float32, the tensors of `classifierParamSpecs` concatenated).
 *
 * Written as the diffusion trainer's (trainer/checkpoint.ts): files fsynced into a fresh
 * `<run>/checkpoints/step-N.<pid>.tmp`, renamed, then the relative symlink `<run>/checkpoint`
 * replaced by renaming a new link over it, so a kill at any moment leaves it naming a complete
 * checkpoint; older step directories are removed after the switch.
 */
import { z } from "zod";
import { join } from "node:path";
import { CheckpointError, osReason, RunWriteError } from "../training/checkpoint.ts";
import { type ClassifierConfig, ClassifierConfigSchema, classifierParamSpecs } from "./net.ts";

export { CheckpointError, RunWriteError };

const RngStateSchema = z.object({
  s: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  spare: z.number().nullable(),
});

export const ClassifierMetaSchema = z.looseObject({
  format: z.literal("ddpm-edge/classifier-checkpoint@1"),
  step: z.number().int().nonnegative(),
  classifier: ClassifierConfigSchema,
  schedule: z.object({ kind: z.enum(["linear", "cosine"]), T: z.number().int() }),
  labels: z.array(z.string()),
  dataset: z.string(),
  batch: z.number().int().positive(),
  wallTimeSeconds: z.number().nonnegative(),
  lastLoss: z.number().nullable(),
  backend: z.string(),
  command: z.string(),
  /** Every command that trained this run, oldest first. */
  commands: z.array(z.string()),
  /** The full configuration (./config.ts ClassifierTrainConfig). */
  config: z.record(z.string(), z.unknown()),
  epochs: z.number().nonnegative(),
  rng: z.object({
    sampler: z.object({ epochRng: RngStateSchema, epoch: z.number().int(), pos: z.number().int() }),
    noise: RngStateSchema,
  }),
  paramCount: z.number().int().positive(),
  savedAt: z.string(),
  /** The latest held-out accuracy by t (./accuracy.ts), if one was measured. */
  accuracy: z.unknown().optional(),
});
export type ClassifierMeta = z.infer<typeof ClassifierMetaSchema>;

const FILES = ["params", "ema", "adam_m", "adam_v"] as const;

export interface ClassifierCheckpoint {
  meta: ClassifierMeta;
  params: Map<string, Float32Array>;
  ema: Map<string, Float32Array>;
  adamM: Map<string, Float32Array>;
  adamV: Map<string, Float32Array>;
}

function pack(cfg: ClassifierConfig, tensors: Map<string, Float32Array>): Uint8Array {
  const specs = classifierParamSpecs(cfg);
  const sizes = specs.map((s) => s.shape.reduce((a, b) => a * b, 1));
  const out = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  let o = 0;
  specs.forEach((s, i) => {
    const v = tensors.get(s.name);
    if (!v || v.length !== sizes[i]) {
      throw new CheckpointError(`tensor ${s.name}: expected ${sizes[i]} values, got ${v?.length}`);
    }
    out.set(v, o);
    o += sizes[i];
  });
  const bytes = new Uint8Array(out.length * 4);
  const dv = new DataView(bytes.buffer);
  out.forEach((x, i) => dv.setFloat32(i * 4, x, true));
  return bytes;
}

function unpack(cfg: ClassifierConfig, bytes: Uint8Array, what: string): Map<string, Float32Array> {
  const specs = classifierParamSpecs(cfg);
  const total = specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  if (bytes.length !== total * 4) {
    throw new CheckpointError(`${what}: ${bytes.length} bytes, expected ${total * 4}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, Float32Array>();
  let o = 0;
  for (const s of specs) {
    const v = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < v.length; i++) v[i] = dv.getFloat32((o + i) * 4, true);
    out.set(s.name, v);
    o += v.length;
  }
  return out;
}

async function writeSynced(path: string, data: Uint8Array) {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    for (let off = 0; off < data.length;) off += await f.write(data.subarray(off));
    await f.syncData();
  } finally {
    f.close();
  }
}

async function syncDir(path: string) {
  const d = await Deno.open(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

export async function hasClassifierCheckpoint(runDir: string): Promise<boolean> {
  return await Deno.stat(join(runDir, "checkpoint", "meta.json")).then(() => true, () => false);
}

/** Write a checkpoint atomically (see the module comment). Throws RunWriteError. */
export async function writeClassifierCheckpoint(
  runDir: string,
  ck: ClassifierCheckpoint,
): Promise<void> {
  const meta = ClassifierMetaSchema.parse(ck.meta);
  const sets = { params: ck.params, ema: ck.ema, adam_m: ck.adamM, adam_v: ck.adamV };
  const blobs = FILES.map((f) => [f, pack(meta.classifier, sets[f])] as const);
  const root = join(runDir, "checkpoints");
  const base = `step-${String(meta.step).padStart(8, "0")}`;
  let name = base;
  const link = join(runDir, "checkpoint"), linkTmp = `${link}.${Deno.pid}.tmp`;
  const tmp = () => join(root, `${name}.${Deno.pid}.tmp`);
  let renamed = false;
  try {
    await Deno.mkdir(root, { recursive: true });
    for (let i = 1; await Deno.lstat(join(root, name)).then(() => true, () => false); i++) {
      name = `${base}.${i}`;
    }
    await Deno.remove(tmp(), { recursive: true }).catch(() => {});
    await Deno.mkdir(tmp());
    for (const [f, bytes] of blobs) await writeSynced(join(tmp(), `${f}.bin`), bytes);
    const json = new TextEncoder().encode(JSON.stringify(meta, null, 2) + "\n");
    await writeSynced(join(tmp(), "meta.json"), json);
    await syncDir(tmp());
    await Deno.rename(tmp(), join(root, name));
    renamed = true;
    await syncDir(root);
    await Deno.remove(linkTmp).catch(() => {});
    await Deno.symlink(join("checkpoints", name), linkTmp);
    await Deno.rename(linkTmp, link);
  } catch (e) {
    for (const p of [tmp(), linkTmp, ...(renamed ? [join(root, name)] : [])]) {
      await Deno.remove(p, { recursive: true }).catch(() => {});
    }
    throw new RunWriteError("checkpoint", join(root, base), osReason(e));
  }
  try {
    await syncDir(runDir);
    for await (const e of Deno.readDir(root)) {
      if (e.name !== name) {
        await Deno.remove(join(root, e.name), { recursive: true }).catch(() => {});
      }
    }
  } catch { /* tidying only: the new checkpoint is in place */ }
}

/** Read and validate `<run>/checkpoint`. Throws CheckpointError with a one-line message. */
export async function readClassifierCheckpoint(runDir: string): Promise<ClassifierCheckpoint> {
  let dir: string;
  try {
    dir = await Deno.realPath(join(runDir, "checkpoint"));
  } catch {
    throw new CheckpointError(`${runDir}: no classifier checkpoint (${runDir}/checkpoint)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(join(dir, "meta.json")));
  } catch (e) {
    throw new CheckpointError(`${dir}/meta.json: ${(e as Error).message}`);
  }
  const parsed = ClassifierMetaSchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new CheckpointError(
      `${dir}/meta.json is not a classifier checkpoint (${i.path.join(".")}: ${i.message})`,
    );
  }
  const meta = parsed.data;
  const read = async (f: (typeof FILES)[number]) =>
    unpack(meta.classifier, await Deno.readFile(join(dir, `${f}.bin`)), `${dir}/${f}.bin`);
  return {
    meta,
    params: await read("params"),
    ema: await read("ema"),
    adamM: await read("adam_m"),
    adamV: await read("adam_v"),
  };
}
