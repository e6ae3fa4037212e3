/**
 * Classifier checkpoints: `<run>/checkpoint/` holds `meta.json` (step, network, schedule,
 * labels, the full configuration, the RNG states, …) and `params.bin`, `ema.bin`, `adam_m.bin`,
 * `adam_v.bin` (little-endian float32, the tensors of `classifierParamSpecs` concatenated).
 *
 * Written by the diffusion trainer's writer (trainer/training/checkpoint.ts `writeCheckpointFiles`):
 * files fsynced into a fresh `<run>/checkpoints/step-N.<pid>.tmp`, renamed, then the relative
 * symlink `<run>/checkpoint` replaced by renaming a new link over it, so a kill at any moment
 * leaves it naming a complete checkpoint; older step directories are removed after the switch.
 */
import { z } from "zod";
import { join } from "node:path";
import {
  CheckpointError,
  hasCheckpoint,
  packSpecTensors,
  readTensorSets,
  RUN_META_FIELDS,
  RunRngSchema,
  RunWriteError,
  type TensorSets,
  unpackSpecTensors,
  writeCheckpointFiles,
} from "../training/checkpoint.ts";
import { ClassifierConfigSchema, classifierParamSpecs } from "./net.ts";

export { CheckpointError, hasCheckpoint, RunWriteError };

export const ClassifierMetaSchema = z.looseObject({
  format: z.literal("ddpm-edge/classifier-checkpoint@1"),
  step: z.number().int().nonnegative(),
  classifier: ClassifierConfigSchema,
  schedule: z.object({ kind: z.enum(["linear", "cosine"]), T: z.number().int() }),
  labels: z.array(z.string()),
  /** dataset … config; `config` is ./config.ts ClassifierTrainConfig. */
  ...RUN_META_FIELDS,
  epochs: z.number().nonnegative(),
  rng: RunRngSchema,
  paramCount: z.number().int().positive(),
  savedAt: z.string(),
  /** The latest held-out accuracy by t (./accuracy.ts), if one was measured. */
  accuracy: z.unknown().optional(),
});
export type ClassifierMeta = z.infer<typeof ClassifierMetaSchema>;

export interface ClassifierCheckpoint extends TensorSets {
  meta: ClassifierMeta;
}

/** Write a checkpoint atomically (see the module comment). Throws RunWriteError. */
export async function writeClassifierCheckpoint(
  runDir: string,
  ck: ClassifierCheckpoint,
): Promise<void> {
  const meta = ClassifierMetaSchema.parse(ck.meta);
  const specs = classifierParamSpecs(meta.classifier);
  await writeCheckpointFiles(runDir, meta, ck, (t) => packSpecTensors(specs, t));
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
  const specs = classifierParamSpecs(meta.classifier);
  return { meta, ...await readTensorSets(dir, (b, what) => unpackSpecTensors(specs, b, what)) };
}
