/**
 * The scripts' command lines: node:util `parseArgs` with `--help` and one-line errors.
 *
 * `parseCli(config, cli)` parses exactly as `parseArgs(config)` does (same option objects, same
 * result) but, instead of returning or throwing parseArgs' TypeError, throws a `CliExit`:
 *   - code 0 with the usage text (the command, a one-line summary, every option with its
 *     default) when `--help` or `-h` comes before any `--`, whatever else the line holds;
 *   - code 2 with one line, e.g. `eval: unknown option '--bogus' (run with --help for the
 *     options)`, for an unknown option, a missing or unwanted value, or a stray positional.
 * `runCli(fn)` at a script's entry point turns a `CliExit` into its output (stdout for 0, stderr
 * otherwise) and exit code, with no stack trace; any other error propagates unchanged. So
 * `main(argv)` stays callable from tests, which see the thrown `CliExit`.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export interface CliInfo {
  /** The script's name in messages, e.g. "eval". */
  name: string;
  /** What it does, one line. */
  summary: string;
  /** The synopsis; default `deno run -A scripts/<name>.ts [options]` (plus `[args]`). */
  usage?: string;
  /** Optional text per option name, shown after the option in the usage text. */
  help?: Record<string, string>;
}

/** A command line that ends the run: `--help` (code 0, usage on stdout) or a usage error (2). */
export class CliExit extends Error {
  constructor(readonly code: number, readonly text: string) {
    super(text);
    this.name = "CliExit";
  }

  /** Print the text (stdout for code 0, stderr otherwise) and exit with the code. */
  exit(): never {
    if (this.code === 0) console.log(this.text);
    else console.error(this.text);
    Deno.exit(this.code);
  }
}

/** A usage error of `cli` (exit code 2), for checks parseArgs cannot make (required options). */
export function usageError(cli: Pick<CliInfo, "name">, message: string): CliExit {
  return new CliExit(2, `${cli.name}: ${message} (run with --help for the options)`);
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** The usage text `--help` prints. */
export function usageText(config: ParseArgsConfig, cli: CliInfo): string {
  const options: Options = config.options ?? {};
  const usage = cli.usage ??
    `deno run -A scripts/${cli.name}.ts [options]${config.allowPositionals ? " [args]" : ""}`;
  const rows: [string, string][] = Object.entries(options).map(([name, o]) => {
    const flag = (o.short ? `-${o.short}, ` : "") + `--${name}` +
      (o.type === "string" ? " <value>" : "");
    const notes = [
      cli.help?.[name],
      o.multiple ? "(repeatable)" : undefined,
      o.default === undefined ? undefined : `(default: ${shown(o.default)})`,
    ];
    return [flag, notes.filter((n) => n !== undefined).join(" ")];
  });
  if (!("help" in options)) rows.push([helpFlags(options).join(", "), "print this help and exit"]);
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return [
    `${cli.name}: ${cli.summary}`,
    "",
    `usage: ${usage}`,
    "",
    "options:",
    ...rows.map(([f, n]) => n ? `  ${f.padEnd(width)}${n}`.trimEnd() : `  ${f}`),
  ].join("\n");
}

function shown(v: string | boolean | string[] | boolean[]): string {
  if (Array.isArray(v)) return v.map((x) => shown(x)).join(", ");
  return v === "" ? '""' : String(v);
}

/** `--help`, and `-h` unless an option of the script owns it. */
function helpFlags(options: Options): string[] {
  const hTaken = Object.values(options).some((o) => o.short === "h");
  return hTaken ? ["--help"] : ["-h", "--help"];
}

/** parseArgs' error as one lower-case line without its advice, e.g. "unknown option '--x'". */
function describe(e: Error & { code?: string }): string {
  const quoted = /'([^']*)'/.exec(e.message)?.[1]?.replace(/ <value>$/, "");
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${quoted}'`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument '${quoted}'`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      if (/does not take an argument/.test(e.message)) return `option '${quoted}' takes no value`;
      if (/ambiguous/.test(e.message)) {
        return `option '${quoted}' needs a value, or ${quoted}=<value> for one starting with '-'`;
      }
      return `option '${quoted}' needs a value`;
  }
  const first = e.message.split("\n")[0];
  return first.charAt(0).toLowerCase() + first.slice(1);
}

/**
 * `parseArgs(config)` with `--help` (throws `CliExit` 0 with `usageText`) and usage errors
 * (throws `CliExit` 2 with one line) in place of parseArgs' TypeErrors. `config.args` defaults to
 * `Deno.args`.
 */
export function parseCli<T extends ParseArgsConfig>(
  config: T,
  cli: CliInfo,
): ReturnType<typeof parseArgs<T>> {
  const args = config.args ?? Deno.args;
  const options: Options = config.options ?? {};
  if (!("help" in options)) {
    const end = args.indexOf("--");
    const flags = helpFlags(options);
    if ((end < 0 ? args : args.slice(0, end)).some((a) => flags.includes(a))) {
      throw new CliExit(0, usageText(config, cli));
    }
  }
  try {
    return parseArgs<T>({ ...config, args });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_")) {
      throw usageError(cli, describe(e as Error & { code: string }));
    }
    throw e;
  }
}

/** Run a script's entry point, turning a `CliExit` into its output and exit code. */
export async function runCli<R>(fn: () => R | Promise<R>): Promise<R> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CliExit) e.exit();
    throw e;
  }
}
