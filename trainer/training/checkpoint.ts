/**
 * Training checkpoints: `<run>/checkpoint/` holds
 *   meta.json   — { step, unet, schedule, labels, dataset, batch, wallTimeSeconds, lastLoss,
 *                   backend, command, ... } plus what resume needs (config, RNG states, Adam)
 *   params.bin, ema.bin, adam_m.bin, adam_v.bin — little-endian float32, the tensors of
 *                   `paramSpecs(unet)` concatenated in that order.
 *
 * Atomicity: each checkpoint is written, file by file with fsync, into a fresh directory
 * `<run>/checkpoints/step-NNNNNNNN.<pid>.tmp`, renamed to `step-NNNNNNNN`, and then
 * `<run>/checkpoint` — a relative symlink — is replaced by atomically renaming a new symlink over
 * it. A kill -9 at any moment therefore leaves `<run>/checkpoint` pointing at a complete
 * checkpoint (the previous one until the rename). Older step directories and stale temporaries are
 * removed after the switch, once it is durable (the files, the new directory's entries, the
 * rename and the link are each fsynced, so a power cut cannot leave the link naming a deleted
 * checkpoint). The live directory is never deleted or overwritten before the switch:
 * a checkpoint of the step it already holds gets a fresh name (`step-NNNNNNNN.1`).
 *
 * A write that fails (disk full, read-only or vanished run directory) removes its own temporary
 * and unlinked directory, leaves `<run>/checkpoint` on the previous checkpoint and throws a
 * RunWriteError: "cannot write checkpoint to <dir>: <reason>".
 */
import { z } from "zod";
import { join } from "node:path";
import { ScheduleSchema, UNetConfigSchema } from "../../shared/model_card.ts";
import type { UNetConfig } from "../../shared/model_card.ts";
import { type ParamSpec, paramSpecs, specsSize } from "../network/unet.ts";
import { PREDICTIONS } from "../../shared/prediction.ts";
import { LR_SCHEDULES } from "./lr_schedule.ts";
import type { SavedState } from "./loop.ts";

export const CHECKPOINT_FILES = ["params", "ema", "adam_m", "adam_v"] as const;
export type TensorSet = (typeof CHECKPOINT_FILES)[number];

const RngStateSchema = z.object({
  s: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  spare: z.number().nullable(),
});

/** A checkpoint's `rng`: the epoch sampler's and the noise stream's states (resume exactly). */
export const RunRngSchema = z.object({
  sampler: z.object({ epochRng: RngStateSchema, epoch: z.number().int(), pos: z.number().int() }),
  noise: RngStateSchema,
});

/**
 * The fields of a checkpoint's meta that record how the run was trained (`runMeta` in ./cli.ts
 * writes them), the same in every network's checkpoint (in this order, after the network and
 * its labels).
 */
export const RUN_META_FIELDS = {
  dataset: z.string(),
  batch: z.number().int().positive(),
  wallTimeSeconds: z.number().nonnegative(),
  lastLoss: z.number().nullable(),
  backend: z.string(),
  command: z.string(),
  /** Every command that trained this run, oldest first. */
  commands: z.array(z.string()),
  /** The full training configuration (./config.ts TrainConfig, the classifier's own). */
  config: z.record(z.string(), z.unknown()),
};

export const CheckpointMetaSchema = z.looseObject({
  format: z.literal("ddpm-edge/checkpoint@1"),
  step: z.number().int().nonnegative(),
  unet: UNetConfigSchema,
  schedule: ScheduleSchema,
  labels: z.array(z.string()).nullable(),
  ...RUN_META_FIELDS,
  /** Number of Adam updates applied (= step). */
  adamStep: z.number().int().nonnegative(),
  emaDecay: z.number(),
  epochs: z.number().nonnegative(),
  rng: RunRngSchema,
  paramCount: z.number().int().positive(),
  savedAt: z.string(),
  /** What the network predicts (absent in checkpoints written before the option: epsilon). */
  prediction: z.enum(PREDICTIONS).optional(),
  /** The per-pixel loss (absent = l2). */
  loss: z.enum(["l2", "l1"]).optional(),
  /** Label dropout (conditional runs). */
  condDrop: z.number().optional(),
  /** The lr schedule the run follows (trainer/training/lr_schedule.ts). */
  lrSchedule: z.object({
    kind: z.enum(LR_SCHEDULES),
    lr: z.number(),
    warmup: z.number().int(),
    min: z.number(),
    decaySteps: z.number().int(),
  }).optional(),
});
export type CheckpointMeta = z.infer<typeof CheckpointMetaSchema>;

/** A checkpoint's four tensor sets by parameter name (`CHECKPOINT_FILES`, in that order). */
export interface TensorSets {
  params: Map<string, Float32Array>;
  ema: Map<string, Float32Array>;
  adamM: Map<string, Float32Array>;
  adamV: Map<string, Float32Array>;
}

export interface Checkpoint extends TensorSets {
  meta: CheckpointMeta;
}

export class CheckpointError extends Error {
  override name = "CheckpointError";
}

/** A file or directory of the run that could not be written; the message names it and why. */
export class RunWriteError extends Error {
  override name = "RunWriteError";
  constructor(readonly what: string, readonly path: string, readonly reason: string) {
    super(`cannot write ${what} to ${path}: ${reason}`);
  }
}

/**
 * The operating system's reason in a filesystem error, e.g. "no space left on device" from
 * Deno's "No space left on device (os error 28): open '<path>'".
 */
export function osReason(e: unknown): string {
  const m = ((e as Error)?.message ?? String(e)).replace(/ \(os error \d+\)[^]*$/, "");
  return m.charAt(0).toLowerCase() + m.slice(1);
}

export const checkpointDir = (runDir: string) => join(runDir, "checkpoint");

/** Whether `<run>/checkpoint/meta.json` exists. */
export async function hasCheckpoint(runDir: string): Promise<boolean> {
  try {
    await Deno.stat(join(checkpointDir(runDir), "meta.json"));
    return true;
  } catch {
    return false;
  }
}

/** Concatenate tensors in paramSpecs order as little-endian float32 bytes. */
export function packTensors(unet: UNetConfig, tensors: Map<string, Float32Array>): Uint8Array {
  return packSpecTensors(paramSpecs(unet), tensors);
}

/** Split little-endian float32 bytes into the tensors of paramSpecs(unet). */
export function unpackTensors(
  unet: UNetConfig,
  bytes: Uint8Array,
  what = "tensors",
): Map<string, Float32Array> {
  return unpackSpecTensors(paramSpecs(unet), bytes, what);
}

/** Concatenate tensors in `specs` order as little-endian float32 bytes (any network's specs). */
export function packSpecTensors(
  specs: readonly ParamSpec[],
  tensors: Map<string, Float32Array>,
): Uint8Array {
  const total = specsSize(specs);
  const out = new Float32Array(total);
  let o = 0;
  for (const s of specs) {
    const v = tensors.get(s.name);
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (!v || v.length !== size) {
      throw new CheckpointError(`tensor ${s.name}: expected ${size} values, got ${v?.length}`);
    }
    out.set(v, o);
    o += size;
  }
  return littleEndianBytes(out);
}

/** Split little-endian float32 bytes into the tensors of `specs`; `what` names them in errors. */
export function unpackSpecTensors(
  specs: readonly ParamSpec[],
  bytes: Uint8Array,
  what: string,
): Map<string, Float32Array> {
  const total = specsSize(specs);
  if (bytes.length !== total * 4) {
    throw new CheckpointError(`${what}: ${bytes.length} bytes, expected ${total * 4}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, Float32Array>();
  let o = 0;
  for (const s of specs) {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(size);
    for (let i = 0; i < size; i++) v[i] = dv.getFloat32((o + i) * 4, true);
    out.set(s.name, v);
    o += size;
  }
  return out;
}

const hostLittleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function littleEndianBytes(v: Float32Array): Uint8Array {
  if (hostLittleEndian) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => dv.setFloat32(i * 4, x, true));
  return out;
}

async function writeSynced(path: string, data: Uint8Array) {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    let off = 0;
    while (off < data.length) off += await f.write(data.subarray(off));
    await f.syncData();
  } finally {
    f.close();
  }
}

/** fsync a directory, so the entries created or renamed in it survive a power cut. */
async function syncDir(path: string) {
  const d = await Deno.open(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

export interface CheckpointData extends TensorSets {
  meta: CheckpointMeta;
}

/** Write a checkpoint atomically (see the module comment). */
export async function writeCheckpoint(runDir: string, ck: CheckpointData): Promise<void> {
  const meta = CheckpointMetaSchema.parse(ck.meta);
  await writeCheckpointFiles(runDir, meta, ck, (t) => packTensors(meta.unet, t));
}

/**
 * Write `meta` (already validated, as `meta.json`) and the tensor sets packed by `pack` as the
 * checkpoint of step `meta.step`, atomically (see the module comment); any network's checkpoint.
 * Throws the packer's CheckpointError before writing anything, RunWriteError on a failed write.
 */
export async function writeCheckpointFiles(
  runDir: string,
  meta: { step: number },
  ck: TensorSets,
  pack: (tensors: Map<string, Float32Array>) => Uint8Array,
): Promise<void> {
  const sets: Record<TensorSet, Map<string, Float32Array>> = {
    params: ck.params,
    ema: ck.ema,
    adam_m: ck.adamM,
    adam_v: ck.adamV,
  };
  const blobs = CHECKPOINT_FILES.map((f) => [f, pack(sets[f])] as const);
  const root = join(runDir, "checkpoints");
  const base = `step-${String(meta.step).padStart(8, "0")}`;
  let name = base;
  const link = checkpointDir(runDir), linkTmp = `${link}.${Deno.pid}.tmp`;
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
    await writeSynced(
      join(tmp(), "meta.json"),
      new TextEncoder().encode(JSON.stringify(meta, null, 2) + "\n"),
    );
    await syncDir(tmp());
    await Deno.rename(tmp(), join(root, name));
    renamed = true;
    await syncDir(root);
    await Deno.remove(linkTmp).catch(() => {});
    await Deno.symlink(join("checkpoints", name), linkTmp);
    await Deno.rename(linkTmp, link);
  } catch (e) {
    // The link still names the previous checkpoint; drop this write's pieces (and free the space).
    for (const p of [tmp(), linkTmp, ...(renamed ? [join(root, name)] : [])]) {
      await Deno.remove(p, { recursive: true }).catch(() => {});
    }
    throw new RunWriteError("checkpoint", join(root, base), osReason(e));
  }
  try {
    // The switch is made durable before the previous checkpoint goes (if this fails, it stays).
    await syncDir(runDir);
    for await (const e of Deno.readDir(root)) {
      if (e.name !== name) {
        await Deno.remove(join(root, e.name), { recursive: true }).catch(() => {});
      }
    }
  } catch { /* tidying only: the new checkpoint is already in place */ }
}

/**
 * The four tensor sets of the checkpoint directory `dir` (resolved), each file's bytes split by
 * `unpack` (given the file's path for its errors).
 */
export async function readTensorSets(
  dir: string,
  unpack: (bytes: Uint8Array, what: string) => Map<string, Float32Array>,
): Promise<TensorSets> {
  const read = async (f: TensorSet) =>
    unpack(await Deno.readFile(join(dir, `${f}.bin`)), `${dir}/${f}.bin`);
  return {
    params: await read("params"),
    ema: await read("ema"),
    adamM: await read("adam_m"),
    adamV: await read("adam_v"),
  };
}

/** What `restoreState` (./loop.ts) takes from a checkpoint: its step, tensors and RNG states. */
export function savedStateOf(
  ck: TensorSets & { meta: { step: number; rng: z.infer<typeof RunRngSchema> } },
): SavedState {
  return {
    step: ck.meta.step,
    params: ck.params,
    ema: ck.ema,
    adamM: ck.adamM,
    adamV: ck.adamV,
    sampler: ck.meta.rng.sampler,
    noise: ck.meta.rng.noise,
  };
}

/**
 * Read and validate `<run>/checkpoint`: meta plus the four tensor sets by parameter name.
 * The symlink is resolved once, so a checkpoint written concurrently never mixes into the read
 * (if the trainer deletes the directory mid-read, the read is retried on the new one).
 */
export async function readCheckpoint(runDir: string): Promise<Checkpoint> {
  for (let attempt = 0;; attempt++) {
    try {
      return await readResolved(runDir);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound) || attempt >= 3) {
        if (e instanceof Deno.errors.NotFound) {
          throw new CheckpointError(`${runDir}: no checkpoint (${e.message})`);
        }
        throw e;
      }
    }
  }
}

async function readResolved(runDir: string): Promise<Checkpoint> {
  const dir = await Deno.realPath(checkpointDir(runDir));
  const text = await Deno.readTextFile(join(dir, "meta.json"));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${dir}/meta.json is not JSON: ${(e as Error).message}`);
  }
  const parsed = CheckpointMetaSchema.safeParse(json);
  if (!parsed.success) {
    throw new CheckpointError(`${dir}/meta.json is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const meta = parsed.data;
  return { meta, ...await readTensorSets(dir, (b, what) => unpackTensors(meta.unet, b, what)) };
}
