/**
 * The repository's layout rules (issue 25), read from the relative imports of every .ts file:
 * - no import cycle among product files (test files `*_test.ts` and helpers `*testing.ts`,
 *   `test_models.ts` excepted);
 * - nothing in edge/ or shared/ imports from trainer/ or scripts/ (test helpers may);
 * - trainer/'s top level holds only the command-line doors (at most 8 product files), and each of
 *   trainer/'s wings imports only from the wings below it in WINGS, never from the doors.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = new URL(".", import.meta.url).pathname;
const SKIP = new Set(["node_modules", "runs", "fixtures", ".cache", ".git"]);
/** trainer/'s wings, lowest first: a wing may import only from the wings before it. */
const WINGS = [
  "data",
  "backends",
  "network",
  "training",
  "distill",
  "guidance",
  "export",
  "classifier",
];

const isTest = (f: string) => f.endsWith("_test.ts");
const isHelper = (f: string) => f.endsWith("testing.ts") || f.endsWith("/test_models.ts");
const isProduct = (f: string) => !isTest(f) && !isHelper(f);

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const e of Deno.readDirSync(join(ROOT, dir))) {
    if (SKIP.has(e.name)) continue;
    const p = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) tsFiles(p, out);
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

const IMPORT = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+\.ts)["']/g;
const graph = new Map<string, string[]>();
for (const f of tsFiles("")) {
  const src = Deno.readTextFileSync(join(ROOT, f));
  graph.set(f, [...src.matchAll(IMPORT)].map((m) => normalize(join(dirname(f), m[1]))));
}

Deno.test("every relative import names a file that exists", () => {
  const missing = [...graph].flatMap(([f, ds]) =>
    ds.filter((d) => !graph.has(d)).map((d) => `${f} → ${d}`)
  );
  assert.deepEqual(missing, []);
});

Deno.test("no import cycle among product files", () => {
  // Depth-first search; a back edge to a file on the current path closes a cycle.
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    state.set(f, "open");
    for (const d of graph.get(f) ?? []) {
      if (!isProduct(d) || !graph.has(d)) continue;
      if (state.get(d) === "open") cycles.push([...path.slice(path.indexOf(d)), d].join(" → "));
      else if (!state.has(d)) visit(d, [...path, d]);
    }
    state.set(f, "done");
  };
  for (const f of graph.keys()) if (isProduct(f) && !state.has(f)) visit(f, [f]);
  assert.deepEqual(cycles, []);
});

Deno.test("edge/ and shared/ product files import nothing from trainer/ or scripts/", () => {
  const bad = [...graph]
    .filter(([f]) => /^(edge|shared)\//.test(f) && isProduct(f))
    .flatMap(([f, ds]) =>
      ds.filter((d) => /^(trainer|scripts)\//.test(d)).map((d) => `${f} → ${d}`)
    );
  assert.deepEqual(bad, []);
});

Deno.test("trainer/: a few doors at the top, wings that import only downwards", () => {
  const doors = [...graph.keys()].filter((f) => dirname(f) === "trainer" && isProduct(f));
  assert.ok(doors.length <= 8, `trainer/ top level: ${doors.join(", ")}`);
  const wingOf = (f: string) => relative("trainer", f).split("/")[0];
  const bad: string[] = [];
  for (const [f, ds] of graph) {
    if (!f.startsWith("trainer/") || dirname(f) === "trainer" || isTest(f)) continue;
    const w = WINGS.indexOf(wingOf(f));
    if (w < 0) {
      bad.push(`${f}: trainer/${wingOf(f)}/ is not in WINGS`);
      continue;
    }
    for (const d of ds) {
      if (!d.startsWith("trainer/")) continue;
      const dw = dirname(d) === "trainer" ? Infinity : WINGS.indexOf(wingOf(d));
      if (dw > w) bad.push(`${f} → ${d}`);
    }
  }
  assert.deepEqual(bad, []);
});
