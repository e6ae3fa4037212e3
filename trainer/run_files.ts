/** Run-directory chores shared by `deno task train` and `deno task distill`. */
import { join } from "node:path";

/** Create `dir` if needed and prove a file can be created in it (root ignores permission bits). */
export async function probeWritable(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const probe = join(dir, `.write-probe.${Deno.pid}`);
  await Deno.writeFile(probe, new Uint8Array(1));
  await Deno.remove(probe);
}

/** Keep only the metrics lines at or before `step` (a resumed run replays what came after). */
export async function truncateMetrics(file: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return;
  }
  const kept = text.split("\n").filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  await Deno.writeTextFile(`${file}.tmp`, kept.map((l) => l + "\n").join(""));
  await Deno.rename(`${file}.tmp`, file);
}
