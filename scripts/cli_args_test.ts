import assert from "node:assert/strict";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { CliExit, type CliInfo, parseCli, usageError, usageText } from "./cli_args.ts";
import { main as autoguideMain } from "./eval_autoguide.ts";

const CLI: CliInfo = {
  name: "demo",
  summary: "does a demo thing",
  help: { model: "the model to load" },
};
const OPTIONS = {
  model: { type: "string", default: "fixtures/m.json" },
  n: { type: "string" },
  sweep: { type: "boolean", default: false },
  tag: { type: "string", multiple: true, default: ["a", "b"] },
  query: { type: "string", default: "" },
} satisfies ParseArgsConfig["options"];

/** The CliExit that `fn` throws. */
function exitOf(fn: () => unknown): CliExit {
  try {
    fn();
  } catch (e) {
    if (e instanceof CliExit) return e;
    throw e;
  }
  assert.fail("expected a CliExit");
}

const errorLine = (args: string[], config: ParseArgsConfig = { options: OPTIONS }) => {
  const e = exitOf(() => parseCli({ ...config, args }, CLI));
  assert.equal(e.code, 2);
  assert.ok(!e.text.includes("\n"), `one line: ${e.text}`);
  return e.text;
};

Deno.test("parseCli returns what parseArgs returns for a valid command line", () => {
  for (
    const args of [
      [],
      ["--model", "x.json", "--n=3", "--sweep"],
      ["--tag", "c", "--tag", "d", "--query", "q"],
      ["--model=--help"],
    ]
  ) {
    assert.deepEqual(
      parseCli({ args, options: OPTIONS }, CLI),
      parseArgs({ args, options: OPTIONS }),
    );
  }
  const config = { args: ["a", "--n", "1", "--", "--help", "-h"], allowPositionals: true };
  const r = parseCli({ ...config, options: OPTIONS }, CLI);
  assert.deepEqual(r.positionals, ["a", "--help", "-h"], "--help after -- is an argument");
  assert.equal(r.values.n, "1");
});

Deno.test("--help and -h throw CliExit 0 with the usage text, even next to bad options", () => {
  for (const args of [["--help"], ["-h"], ["--n", "1", "--bogus", "-h"], ["--model", "--help"]]) {
    const e = exitOf(() => parseCli({ args, options: OPTIONS }, CLI));
    assert.equal(e.code, 0, args.join(" "));
    assert.equal(e.text, usageText({ options: OPTIONS }, CLI));
  }
  assert.equal(
    usageText({ options: OPTIONS }, CLI),
    [
      "demo: does a demo thing",
      "",
      "usage: deno run -A scripts/demo.ts [options]",
      "",
      "options:",
      "  --model <value>  the model to load (default: fixtures/m.json)",
      "  --n <value>",
      "  --sweep          (default: false)",
      "  --tag <value>    (repeatable) (default: a, b)",
      '  --query <value>  (default: "")',
      "  -h, --help       print this help and exit",
    ].join("\n"),
  );
});

Deno.test("usage text: own synopsis, positionals, short options, a script's own -h or --help", () => {
  const withUsage = usageText({ options: {} }, { ...CLI, usage: "deno task demo URL [options]" });
  assert.match(withUsage, /^usage: deno task demo URL \[options\]$/m);
  assert.match(
    usageText({ allowPositionals: true }, CLI),
    /^usage: .*demo\.ts \[options\] \[args\]$/m,
  );

  // -h belongs to the script's option: only --help asks for help, -h parses as the option.
  const hosts = { host: { type: "string", short: "h", default: "::" } } as const;
  assert.match(usageText({ options: hosts }, CLI), /^ {2}-h, --host <value> +\(default: ::\)$/m);
  assert.match(usageText({ options: hosts }, CLI), /^ {2}--help +print this help and exit$/m);
  assert.equal(parseCli({ args: ["-h", "x"], options: hosts }, CLI).values.host, "x");
  assert.equal(exitOf(() => parseCli({ args: ["--help"], options: hosts }, CLI)).code, 0);

  // A script with its own --help option keeps it.
  const own = { help: { type: "boolean" } } as const;
  assert.equal(parseCli({ args: ["--help"], options: own }, CLI).values.help, true);
});

Deno.test("usage errors throw CliExit 2 with one line naming the script", () => {
  const tail = " (run with --help for the options)";
  assert.equal(errorLine(["--bogus"]), `demo: unknown option '--bogus'${tail}`);
  assert.equal(errorLine(["-x"]), `demo: unknown option '-x'${tail}`);
  assert.equal(errorLine(["--n", "1", "--model"]), `demo: option '--model' needs a value${tail}`);
  assert.equal(
    errorLine(["--model", "--n"]),
    `demo: option '--model' needs a value, or --model=<value> for one starting with '-'${tail}`,
  );
  assert.equal(errorLine(["--sweep=yes"]), `demo: option '--sweep' takes no value${tail}`);
  assert.equal(errorLine(["stray"]), `demo: unexpected argument 'stray'${tail}`);
  const short = { options: { out: { type: "string", short: "o" } } } as const;
  assert.equal(errorLine(["-o"], short), `demo: option '-o, --out' needs a value${tail}`);
  assert.equal(usageError(CLI, "--model is required").text, `demo: --model is required${tail}`);
  assert.equal(usageError(CLI, "x").code, 2);
});

Deno.test("a script's main(argv) throws CliExit rather than exiting", async () => {
  await assert.rejects(autoguideMain(["--bogus"]), (e) => e instanceof CliExit && e.code === 2);
  await assert.rejects(autoguideMain(["--help"]), (e) => {
    assert.ok(e instanceof CliExit && e.code === 0);
    assert.match(e.text, /^usage: deno task eval:autoguide --model/m);
    assert.match(e.text, /^ {2}--max-t <value> .*\(default: Infinity\)$/m);
    return true;
  });
  // A missing required option is a usage error too (the message the old RangeError had).
  await assert.rejects(
    autoguideMain(["--bad", "x.json"]),
    (e) => e instanceof CliExit && e.code === 2 && /--model and --bad are required/.test(e.text),
  );
});

const SCRIPTS = [
  "bench_edge",
  "bench_models",
  "bench_train",
  "eval",
  "eval_autoguide",
  "eval_img2img",
  "event_loop_probe",
  "footprint",
  "plot_metrics",
  "soak",
];

async function run(permissions: string[], script: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      ...permissions,
      new URL(`./${script}.ts`, import.meta.url).pathname,
    ]
      .concat(args),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

for (const script of SCRIPTS) {
  Deno.test(`scripts/${script}.ts: --help prints the usage, --bogus one line, no stack`, async () => {
    // No read, net, run or ffi permission: printing the help must not touch a model or data.
    const [help, bogus] = await Promise.all([
      run(["--allow-env", "--allow-sys"], script, "--help"),
      run(["-A"], script, "--bogus"),
    ]);
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stderr, "");
    assert.ok(help.stdout.startsWith(`${script}: `), help.stdout);
    assert.match(help.stdout, /^usage: .+$/m);
    assert.match(help.stdout, /^ {2}-h, --help +print this help and exit$/m);

    assert.equal(bogus.code, 2, bogus.stderr);
    assert.equal(bogus.stdout, "");
    assert.equal(
      bogus.stderr,
      `${script}: unknown option '--bogus' (run with --help for the options)\n`,
    );
  });
}

Deno.test("scripts/eval.ts: every option and default in --help; a missing value exits 2", async () => {
  const help = await run(["--allow-env", "--allow-sys"], "eval", "-h");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: deno task eval \[options\]$/m);
  assert.match(
    help.stdout,
    /^ {2}--model <value> +\(default: \/.*fixtures\/models\/mnist\/model\.json\)$/m,
  );
  assert.match(help.stdout, /^ {2}--sweep-steps <value> +\(default: 5,10,14,20,50,100,1000\)$/m);
  assert.match(help.stdout, /^ {2}--sweep +\(default: false\)$/m);
  assert.match(help.stdout, /^ {2}--steps <value>$/m);
  const missing = await run(["-A"], "eval", "--n", "10", "--model");
  assert.equal(missing.code, 2);
  assert.equal(
    missing.stderr,
    "eval: option '--model' needs a value (run with --help for the options)\n",
  );
});
