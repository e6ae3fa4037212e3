/**
 * The flag-table machinery of the trainers' command lines (`./config.ts` for `deno task train`,
 * `trainer/classifier/config.ts` for `deno task train-classifier`): a table of flags, each with its
 * kind, its dotted key in the configuration, its help and whether a resumed run may change it;
 * strict parsing of argv into the explicitly given values by key; a fresh run's raw configuration
 * (defaults, per-dataset image size and channels, the given flags); a resumed run's (the
 * checkpoint's, the resumable flags applied, the others checked against it); the help's columns.
 * Every problem is a ConfigError whose message names the flag.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { defaultChannels } from "../data/datasets.ts";
import { BACKENDS } from "../backends/choice.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

export type FlagKind = "int" | "float" | "string" | "bool" | "list";

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  /** Where the value goes in the configuration (dotted). */
  key: string;
  /** May differ from the checkpoint on --resume. */
  resumable?: boolean;
}

/** Every flag by name (without the leading --). */
export type FlagTable = Record<string, FlagSpec>;

/**
 * The run-control flags both trainers take right after --data, in this order: --limit, --out,
 * --steps, --batch, --backend, --threads, --seed, --lr, --warmup. `defaults` are the defaults their
 * help shows (each trainer's own; the values themselves are in its DEFAULTS).
 */
export function runFlags(defaults: { batch: string; lr: string; warmup: string }): FlagTable {
  return {
    limit: { kind: "int", key: "limit", help: "train on only N training images (0 = all) [0]" },
    out: { kind: "string", key: "out", resumable: true, help: "run directory" },
    steps: { kind: "int", key: "steps", resumable: true, help: "total training steps of the run" },
    batch: {
      kind: "int",
      key: "batch",
      resumable: true,
      help: `batch size [${defaults.batch}]`,
    },
    backend: {
      kind: "string",
      key: "backend",
      resumable: true,
      help: `${BACKENDS.join(" | ")} [auto]`,
    },
    threads: { kind: "int", key: "threads", resumable: true, help: "1 | 2 wasm threads [1]" },
    seed: { kind: "int", key: "seed", help: "seed of init, data order and noise [0]" },
    lr: {
      kind: "float",
      key: "lr",
      resumable: true,
      help: `peak Adam learning rate [${defaults.lr}]`,
    },
    warmup: {
      kind: "int",
      key: "warmup",
      resumable: true,
      help: `linear lr warm-up steps [${defaults.warmup}]`,
    },
  };
}

/** The configuration fields of --data and `runFlags`, first in both trainers' configurations. */
export const RUN_CONFIG_FIELDS = {
  /** "mnist", "fashion", "emoji" or a folder of PNGs (the classifier's: in class subfolders). */
  data: z.string().min(1),
  /** Train on only the first N training images (spread over classes); 0 = all. */
  limit: z.number().int().min(0),
  out: z.string().min(1),
  /** Total steps of the run (a resumed run continues up to this). */
  steps: z.number().int().min(1),
  batch: z.number().int().min(1).max(4096),
  backend: z.enum(BACKENDS),
  threads: z.union([z.literal(1), z.literal(2)]),
  seed: z.number().int().min(0).max(0xffffffff),
  lr: z.number().positive().max(1),
  /** Linear lr warm-up steps from 0. */
  warmup: z.number().int().min(0),
};

/** --ema and --grad-clip, as both trainers take them. */
export function emaClipFlags(): FlagTable {
  return {
    ema: { kind: "float", key: "ema", resumable: true, help: "EMA decay of the weights [0.999]" },
    "grad-clip": {
      kind: "float",
      key: "gradClip",
      resumable: true,
      help: "global grad-norm clip, 0 = off [1]",
    },
  };
}

export interface ParsedFlags {
  /** Explicitly given flags, converted (by config key). */
  given: Map<string, unknown>;
  resume: boolean;
  help: boolean;
}

/** A flag's raw value as its kind; `listExample` is the list shown in a list flag's error. */
function convert(flag: string, kind: FlagKind, raw: string | boolean, listExample: string) {
  if (kind === "bool") return raw;
  const s = String(raw);
  if (kind === "string") return s;
  if (kind === "list") {
    const parts = s.split(",").map((p) => Number(p.trim()));
    if (parts.length === 0 || parts.some((p) => !Number.isInteger(p))) {
      throw new ConfigError(
        `--${flag}: expected comma-separated integers like ${listExample}, got "${s}"`,
      );
    }
    return parts;
  }
  const n = Number(s);
  if (s.trim() === "" || !Number.isFinite(n) || (kind === "int" && !Number.isInteger(n))) {
    throw new ConfigError(
      `--${flag}: expected ${kind === "int" ? "an integer" : "a number"}, got "${s}"`,
    );
  }
  return n;
}

export interface ParseOptions {
  /** The list shown in a list flag's error, e.g. "1,2,2". */
  listExample: string;
  /** Keep only the first line of the parser's own message (its "did you forget…" advice goes). */
  firstLineOnly?: boolean;
}

/**
 * Parse argv against `table` plus --resume and --help (strict: unknown flags are errors; a table
 * with bool flags also takes their --no- forms). Throws ConfigError for unknown flags or
 * malformed values.
 */
export function parseFlagTable(argv: string[], table: FlagTable, o: ParseOptions): ParsedFlags {
  const options: Record<string, { type: "string" | "boolean" }> = {
    resume: { type: "boolean" },
    help: { type: "boolean" },
  };
  for (const [name, f] of Object.entries(table)) {
    options[name] = { type: f.kind === "bool" ? "boolean" : "string" };
  }
  const allowNegative = Object.values(table).some((f) => f.kind === "bool");
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options,
      strict: true,
      allowPositionals: false,
      allowNegative,
    }));
  } catch (e) {
    const m = (e as Error).message;
    throw new ConfigError(`${o.firstLineOnly ? m.split("\n")[0] : m} (see --help)`);
  }
  const given = new Map<string, unknown>();
  for (const [name, f] of Object.entries(table)) {
    const v = values[name];
    if (v !== undefined) given.set(f.key, convert(name, f.kind, v, o.listExample));
  }
  return { given, resume: values.resume === true, help: values.help === true };
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown) {
  const parts = key.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] as Record<string, unknown>;
  o[parts[parts.length - 1]] = value;
}

function getPath(obj: unknown, key: string): unknown {
  return key.split(".").reduce((o, p) => (o as Record<string, unknown>)?.[p], obj);
}

/** The flag whose key is `key` (the key itself when none is). */
export function flagOf(table: FlagTable, key: string): string {
  return Object.entries(table).find(([, f]) => f.key === key)?.[0] ?? key;
}

/** One "--flag: message" line for each of a schema's issues (paths are dotted config keys). */
export function issueLines(
  table: FlagTable,
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): string[] {
  return issues.map((i) => `--${flagOf(table, i.path.join("."))}: ${i.message}`);
}

/**
 * A fresh run's raw configuration: `--data`, `--steps` and `--out` required, `defaults` for the
 * rest, the image size 28 for the MNISTs and 32 for emoji and folders, the input channels
 * `defaultChannels(data)`, then the given flags.
 */
export function freshRaw(defaults: object, flags: ParsedFlags): Record<string, unknown> {
  for (const k of ["data", "steps", "out"]) {
    if (!flags.given.has(k)) throw new ConfigError(`--${k} is required (see --help)`);
  }
  const raw = structuredClone(defaults) as Record<string, unknown>;
  const data = flags.given.get("data") as string;
  setPath(raw, "arch.imageSize", data === "mnist" || data === "fashion" ? 28 : 32);
  setPath(raw, "arch.inChannels", defaultChannels(data));
  for (const [k, v] of flags.given) setPath(raw, k, v);
  return raw;
}

/**
 * A resumed run's raw configuration: the checkpoint's `stored` one with the resumable flags
 * applied; every other given flag that differs from it is a conflict line
 * ("--flag <given> conflicts with the checkpoint (<stored>)").
 */
export function resumedRaw(
  table: FlagTable,
  flags: ParsedFlags,
  stored: object,
): { raw: Record<string, unknown>; conflicts: string[] } {
  const raw = structuredClone(stored) as Record<string, unknown>;
  const conflicts: string[] = [];
  for (const [k, v] of flags.given) {
    const flag = flagOf(table, k);
    if (table[flag]?.resumable) {
      setPath(raw, k, v);
    } else if (JSON.stringify(getPath(stored, k)) !== JSON.stringify(v)) {
      conflicts.push(
        `--${flag} ${fmt(v)} conflicts with the checkpoint (${fmt(getPath(stored, k))})`,
      );
    }
  }
  return { raw, conflicts };
}

function fmt(v: unknown): string {
  return Array.isArray(v) ? v.join(",") : String(v);
}

/**
 * Fix the decay horizon of a decaying lr schedule to the run's --steps when none is given, so a
 * later `--resume --steps <more>` keeps the schedule it started with (and resumes it exactly).
 */
export function withDecayHorizon<
  C extends { lrSchedule: string; lrDecaySteps: number; steps: number },
>(
  c: C,
): C {
  return c.lrSchedule !== "constant" && c.lrDecaySteps === 0 ? { ...c, lrDecaySteps: c.steps } : c;
}

/**
 * The help's option lines: --resume, --help, then every flag of the table with its help, in a
 * column as wide as the longest usage plus one space (at least `minWidth`).
 */
export function flagHelpLines(table: FlagTable, minWidth = 0): string[] {
  const usage = Object.entries(table).map(([name, f]) => [
    `--${name}${f.kind === "bool" ? "" : ` <${f.kind === "list" ? "a,b,c" : f.kind}>`}`,
    f.help,
  ]);
  const width = Math.max(minWidth, ...usage.map(([u]) => u.length + 1));
  return [
    `  ${"--resume".padEnd(width)}continue <run dir>/checkpoint up to --steps`,
    `  ${"--help".padEnd(width)}this text`,
    ...usage.map(([u, help]) => `  ${u.padEnd(width)}${help}`),
  ];
}
