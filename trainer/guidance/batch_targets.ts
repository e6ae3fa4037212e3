/**
 * What a training batch learns besides the data's ε: the guide teacher's guided output
 * (trainer/guidance/guide_teacher.ts) and, for images whose label was dropped, the autoguided null
 * class (trainer/guidance/autoguide.ts). Loads the frozen runs a config names, records their
 * sha256s in the config, and composes one targets function for trainStep (undefined: the data's).
 */
import type { UNetConfig } from "../../shared/model_card.ts";
import type { TrainConfig } from "../training/config.ts";
import type { Batch } from "../training/loop.ts";
import { type GuideTeacher, loadGuideTeacher } from "./guide_teacher.ts";
import { type Autoguide, loadAutoguide } from "./autoguide.ts";

export interface BatchTargets {
  /** The config with the frozen runs' sha256s recorded (cleared for runs no longer used). */
  cfg: TrainConfig;
  targets?: (b: Batch) => Promise<Float32Array>;
  /** One line per frozen run in use, for the log. */
  describe: string[];
  dispose(): void;
}

/**
 * Load what `cfg` names. `stored` is the config the run was checkpointed with: a resume keeps a
 * recorded sha256 while the path is the one it recorded, so changed weights are refused
 * (GuideTeacherError, FrozenRunError).
 */
export async function loadBatchTargets(
  cfg: TrainConfig,
  unet: UNetConfig,
  stored?: Partial<TrainConfig>,
): Promise<BatchTargets> {
  const same = <K extends keyof TrainConfig>(path: K, sha: keyof TrainConfig) =>
    stored?.[path] === cfg[path] ? stored?.[sha] as string | undefined : undefined;
  const guide: GuideTeacher | null = await loadGuideTeacher(
    cfg,
    unet,
    same("guideTeacher", "guideTeacherSha256"),
  );
  let auto: Autoguide | null;
  try {
    auto = await loadAutoguide(cfg, unet, {
      good: same("autoguideGood", "autoguideGoodSha256"),
      bad: same("autoguideBad", "autoguideBadSha256"),
    });
  } catch (e) {
    guide?.dispose();
    throw e;
  }
  const describe: string[] = [];
  if (guide) {
    describe.push(
      `guidance distillation: targets = ${cfg.guideTeacher} (step ${guide.step}, ema sha256 ` +
        `${guide.sha256.slice(0, 12)}…) at guidance ${cfg.guideWeight}; dropped labels learn ` +
        (cfg.guideNull === "class" ? "its output at their own label" : "its null class"),
    );
  }
  if (auto) {
    describe.push(
      `null-class autoguidance: dropped labels learn ε_bad + ${cfg.autoguideWeight}·(ε_good − ` +
        `ε_bad), good = ${cfg.autoguideGood} (step ${auto.good.step}, ema sha256 ` +
        `${auto.good.sha256.slice(0, 12)}…), bad = ${cfg.autoguideBad} (step ${auto.bad.step}, ` +
        `ema sha256 ${auto.bad.sha256.slice(0, 12)}…)`,
    );
  }
  const targets = guide || auto
    ? async (b: Batch) => {
      const t = guide ? await guide.targets(b) : b.target;
      return auto ? await auto.targets(b, t) : t;
    }
    : undefined;
  return {
    cfg: {
      ...cfg,
      guideTeacherSha256: guide?.sha256,
      autoguideGoodSha256: auto?.good.sha256,
      autoguideBadSha256: auto?.bad.sha256,
    },
    targets,
    describe,
    dispose: () => {
      guide?.dispose();
      auto?.dispose();
    },
  };
}
