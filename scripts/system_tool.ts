/**
 * Whether a system tool the project does not install itself (wrk, mount, …) can run here, for
 * tests that need one: they skip with the printed reason when it cannot (the fresh-machine
 * rule: a machine with only Node.js must pass the README's test command). `.ci/run` installs
 * those tools so that CI runs the tests.
 */

/** Run `cmd args…`; null when it exits 0, else why not (not found, or its exit and stderr). */
export async function whyNot(cmd: string, ...args: string[]): Promise<string | null> {
  try {
    // Deno.Command throws synchronously when the program is not found: keep it in the try.
    const r = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
    return r.success
      ? null
      : `${cmd} ${args.join(" ")}: exit ${r.code}: ${
        new TextDecoder().decode(r.stderr).trim().split("\n")[0]
      }`;
  } catch (e) {
    return `${cmd}: ${(e as Error).message}`;
  }
}

/**
 * Null when `cmd` can be spawned (whatever its exit status), else a reason naming it and how to
 * install it; the reason is also printed as `<test file> skipped: …`.
 */
export async function missingTool(
  testFile: string,
  cmd: string,
  args: string[],
  install: string,
): Promise<string | null> {
  try {
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return null;
  } catch (e) {
    const why = `${cmd} cannot run (${(e as Error).message}); install it with: ${install}`;
    console.log(`${testFile} skipped: ${why}`);
    return why;
  }
}
