/**
 * The state a distillation run starts in: round 0 with the student at the teacher's EMA weights
 * (fresh Adam, the seeded streams), or a `--resume`'s round, record, round teacher and student
 * exactly as its checkpoint left them, the round teacher's weights checked against their sha256.
 */
import { join } from "node:path";
import { sha256Hex } from "../../edge/model.ts";
import type { UNetConfig } from "../../shared/model_card.ts";
import { Rng } from "../../shared/rng.ts";
import {
  type Checkpoint,
  packTensors,
  readCheckpoint,
  savedStateOf,
} from "../training/checkpoint.ts";
import { restoreState, streamSeeds, type TrainState } from "../training/loop.ts";
import { BatchSampler } from "../data/datasets.ts";
import { type DistillConfig, DistillError, type DistillMeta } from "./config.ts";
import { studentFrom } from "./step.ts";

/** The round a run is in and what it trains with. */
export interface RoundState {
  round: number;
  /** The finished rounds. */
  record: DistillMeta["record"];
  /** This round's teacher: the `--teacher`'s EMA in round 0, round r−1's student EMA after. */
  teacherWeights: Map<string, Float32Array>;
  roundTeacherSha: string;
  st: TrainState;
}

/**
 * The starting state of a run on `count` images: from `resumed` (the run's own checkpoint) or,
 * when null, fresh from the teacher. Throws DistillError when a resumed round's teacher weights
 * (round-(r−1)/checkpoint) no longer match the checkpoint's sha256.
 */
export async function startingState(
  cfg: DistillConfig,
  unet: UNetConfig,
  resumed: Checkpoint | null,
  teacherEma: Map<string, Float32Array>,
  teacherSha: string,
  count: number,
): Promise<RoundState> {
  let round: number, st: TrainState, record: DistillMeta["record"], roundTeacherSha: string;
  let teacherWeights: Map<string, Float32Array>;
  const seeds = streamSeeds(cfg.seed);
  if (resumed) {
    const dm = resumed.meta.distill as DistillMeta;
    round = dm.round;
    record = dm.record;
    if (round === 0) teacherWeights = teacherEma;
    else teacherWeights = (await readCheckpoint(join(cfg.out, `round-${round - 1}`))).ema;
    roundTeacherSha = await sha256Hex(packTensors(unet, teacherWeights));
    if (roundTeacherSha !== dm.roundTeacherSha256) {
      throw new DistillError(
        `round ${round}'s teacher weights do not match the checkpoint's sha256`,
      );
    }
    // The step within the round, not the run's global step.
    st = restoreState(unet, { ...savedStateOf(resumed), step: dm.roundStep }, count);
  } else {
    round = 0;
    record = [];
    teacherWeights = teacherEma;
    roundTeacherSha = teacherSha;
    st = studentFrom(
      unet,
      teacherEma,
      new BatchSampler(count, seeds.data),
      new Rng(seeds.noise),
    );
  }
  return { round, record, teacherWeights, roundTeacherSha, st };
}
