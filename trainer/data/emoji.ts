/**
 * `--data emoji`: the 64-px emoji of two npm packages, 32×32 RGB by default, labelled by
 * `emoji.json`'s `category` (9 classes; "Component" — bare skin-tone and hair swatches — is
 * dropped).
 *
 * - Images: every emoji and each of its skin-tone variants, from Google's Noto set
 *   (`emoji-datasource-google@16.0.0`, Apache-2.0) and Twitter's Twemoji set
 *   (`emoji-datasource-twitter@16.0.0`, CC-BY-4.0): 3,781 + 3,781 = 7,562 images.
 * - Decoding: the project's one PNG path (shared/png_input.ts, alpha composited over black, then
 *   shared/resize.ts's area resize, a 2×2 box filter from 64 to 32), as for a PNG folder.
 * - Held-out split, deterministic per class: within each category the base emoji are taken in
 *   the packages' `sort_order`, and every tenth (positions 9, 19, …) is held out together with
 *   its skin-tone variants in both sets, so no rendering of a held-out emoji is trained on.
 * - Download: the packages (~150 MB) are installed with npm into `.cache/emoji` (or
 *   `$DDPM_EMOJI_DIR`) the first time emoji data is used, never by `serve` or `test`.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DataError, type Dataset, type DatasetSplit } from "./dataset.ts";
import { pngBytesToImage } from "./png_image.ts";

/** The two image sets: npm package, licence and the attribution a model card carries. */
export const EMOJI_SOURCES = [
  {
    set: "google",
    pkg: "emoji-datasource-google",
    version: "16.0.0",
    licence: "Apache-2.0",
    attribution: "Noto Emoji © Google LLC, Apache License 2.0 (via emoji-datasource-google@16.0.0)",
  },
  {
    set: "twitter",
    pkg: "emoji-datasource-twitter",
    version: "16.0.0",
    licence: "CC-BY-4.0",
    attribution:
      "Twemoji © Twitter, Inc. and other contributors, CC BY 4.0 (via emoji-datasource-twitter@16.0.0)",
  },
] as const;

/** The 9 classes, in the packages' category order (categories.json), "Component" dropped. */
export const EMOJI_CATEGORIES = [
  "Smileys & Emotion",
  "People & Body",
  "Animals & Nature",
  "Food & Drink",
  "Travel & Places",
  "Activities",
  "Objects",
  "Symbols",
  "Flags",
];

/** Every tenth base emoji of a category is held out (with all its renderings). */
export const EMOJI_HELD_OUT_EVERY = 10;

interface EmojiEntry {
  unified: string;
  image: string;
  category: string;
  sort_order: number;
  [k: `has_img_${string}`]: boolean | undefined;
  skin_variations?: Record<string, { image: string; [k: `has_img_${string}`]: unknown }>;
}

/**
 * The npm prefix the packages are installed under (they land in its node_modules/):
 * `$DDPM_EMOJI_DIR`, else `.cache/emoji` at the repository root.
 */
export function emojiRoot(): string {
  const env = Deno.env.get("DDPM_EMOJI_DIR");
  if (env) return env;
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".cache", "emoji");
}

const installHint = (root: string) =>
  `npm install --prefix ${root} ${EMOJI_SOURCES.map((s) => `${s.pkg}@${s.version}`).join(" ")}`;

/** The package folder of one set under the npm prefix `root`, or null if absent. */
async function packageDir(root: string, pkg: string, version: string): Promise<string | null> {
  const dir = join(root, "node_modules", pkg);
  try {
    const meta = JSON.parse(await Deno.readTextFile(join(dir, "package.json")));
    return meta.version === version ? dir : null;
  } catch {
    return null;
  }
}

/**
 * Make sure both packages are under `root`, installing them with npm when they are not.
 * Throws a one-line DataError naming the command to run when that fails (e.g. no network).
 * `npmEnv` adds environment variables for npm (tests point it at an unreachable registry).
 */
export async function ensureEmojiPackages(
  root = emojiRoot(),
  npmEnv: Record<string, string> = {},
): Promise<string[]> {
  const dirs = await Promise.all(EMOJI_SOURCES.map((s) => packageDir(root, s.pkg, s.version)));
  if (dirs.every((d) => d !== null)) return dirs as string[];
  console.error(`--data emoji: installing the emoji image packages (~150 MB) into ${root} …`);
  let ok = false, why = "";
  try {
    await Deno.mkdir(root, { recursive: true });
    const out = await new Deno.Command("npm", {
      args: [
        "install",
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--prefix",
        root,
        ...EMOJI_SOURCES.map((s) => `${s.pkg}@${s.version}`),
      ],
      env: npmEnv,
      stdout: "null",
      stderr: "piped",
    }).output();
    ok = out.success;
    why = new TextDecoder().decode(out.stderr).trim().split("\n").filter(Boolean).at(-1) ?? "";
  } catch (e) {
    why = (e as Error).message;
  }
  const again = await Promise.all(EMOJI_SOURCES.map((s) => packageDir(root, s.pkg, s.version)));
  if (!ok || again.some((d) => d === null)) {
    throw new DataError(
      `--data emoji needs the npm packages ${
        EMOJI_SOURCES.map((s) => `${s.pkg}@${s.version}`).join(" and ")
      }, which could not be installed (${why || "npm failed"}); with network access run: ${
        installHint(root)
      }`,
    );
  }
  return again as string[];
}

/** One image to load: its file, class, and the base emoji it renders (for the split). */
export interface EmojiItem {
  file: string;
  label: number;
  base: string;
  set: string;
}

/**
 * The images of both sets in `packages` (the folder holding the two package folders), in a
 * fixed order, each with its class and base emoji.
 */
export async function listEmoji(packages: string): Promise<EmojiItem[]> {
  const items: EmojiItem[] = [];
  for (const s of EMOJI_SOURCES) {
    const dir = join(packages, s.pkg);
    const entries = JSON.parse(await Deno.readTextFile(join(dir, "emoji.json"))) as EmojiEntry[];
    const has = `has_img_${s.set}` as const;
    const sorted = [...entries].sort((a, b) => a.sort_order - b.sort_order);
    for (const e of sorted) {
      const label = EMOJI_CATEGORIES.indexOf(e.category);
      if (label < 0) continue; // "Component"
      const renderings = [e, ...Object.values(e.skin_variations ?? {})];
      for (const r of renderings) {
        if (!r[has]) continue;
        items.push({
          file: join(dir, "img", s.set, "64", r.image),
          label,
          base: e.unified,
          set: s.set,
        });
      }
    }
  }
  return items;
}

/** Held-out base emoji: every EMOJI_HELD_OUT_EVERY-th of each category in sort order. */
export function heldOutBases(items: EmojiItem[]): Set<string> {
  const seen = EMOJI_CATEGORIES.map(() => new Set<string>());
  const held = new Set<string>();
  for (const it of items) {
    const cat = seen[it.label];
    if (cat.has(it.base)) continue;
    if (cat.size % EMOJI_HELD_OUT_EVERY === EMOJI_HELD_OUT_EVERY - 1) held.add(it.base);
    cat.add(it.base);
  }
  return held;
}

export interface EmojiOptions {
  imageSize?: number;
  channels?: number;
  /**
   * The folder holding the two package folders (default: emojiRoot()'s node_modules, where
   * they are installed if absent; tests use fixtures/emoji-sample).
   */
  packages?: string;
}

/** Load and split the emoji data set (see the module comment). Throws DataError. */
export async function loadEmoji(opts: EmojiOptions = {}): Promise<DatasetSplit> {
  const size = opts.imageSize ?? 32, channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) {
    throw new DataError(`--channels-in must be 1 (gray) or 3 (RGB), got ${channels}`);
  }
  let packages = opts.packages;
  if (packages === undefined) {
    const root = emojiRoot();
    await ensureEmojiPackages(root);
    packages = join(root, "node_modules");
  }
  const items = await listEmoji(packages);
  const held = heldOutBases(items);
  const px = size * size * channels;
  const build = (list: EmojiItem[]): Promise<Dataset> => decodeAll(list, size, channels, px);
  // Class-major order (as the other loaders), stable within a class.
  const byClass = (a: EmojiItem, b: EmojiItem) => a.label - b.label;
  const [train, test] = await Promise.all([
    build(items.filter((i) => !held.has(i.base)).sort(byClass)),
    build(items.filter((i) => held.has(i.base)).sort(byClass)),
  ]);
  return { train, test };
}

async function decodeAll(
  list: EmojiItem[],
  size: number,
  channels: number,
  px: number,
): Promise<Dataset> {
  const images = new Float32Array(list.length * px);
  const labels = new Int32Array(list.length);
  for (let k = 0; k < list.length; k++) {
    const bytes = await Deno.readFile(list[k].file).catch((e) => {
      throw new DataError(`${list[k].file}: ${(e as Error).message}`);
    });
    images.set(pngBytesToImage(bytes, size, channels, list[k].file), k * px);
    labels[k] = list[k].label;
  }
  return {
    name: "emoji",
    images,
    labels,
    labelNames: [...EMOJI_CATEGORIES],
    count: list.length,
    imageSize: size,
    channels,
  };
}
