/**
 * Property/fuzz test of the HTTP surface: ≥ 10,000 generated requests through `app.request` on a
 * real engine (tiny exported model). Most are invalid and must be refused before sampling; the
 * valid ones use tiny work (the app's work cap is 8 image-forwards) and must answer 200.
 *
 * Properties, for every request:
 *   - never a 5xx;
 *   - GET/HEAD /generate: 200 exactly when an independent oracle (below) finds the query valid,
 *     else 400 with JSON `{error, issues: [{path, message}]}` whose paths are exactly the
 *     offending parameters (each unknown one named with "unknown parameter", each repeated one
 *     with "given more than once", the work cap reported on `n`);
 *   - other methods on /generate: 405 JSON with Allow (OPTIONS: 204, the CORS preflight);
 *   - paths that are not routes: 404 JSON; a path + query over MAX_URL_LENGTH: 414 JSON;
 *   - invalid and HEAD requests run no model step: the engine's run count grows by exactly the
 *     steps of the valid GETs;
 *   - /healthz is still ready and the queue idle afterwards.
 *
 * A third part fuzzes the uploads of POST /denoise and POST /inpaint (below).
 *
 * A second part sends raw HTTP/1.1 to a real `deno serve` (request lines and headers no Request
 * object can carry: bytes outside URL syntax, malformed Host, bodies on GET): never a 5xx.
 *
 * Reproduce a failure with the printed seed: FUZZ_SEED=<seed> [FUZZ_COUNT=<n>] deno test -A
 * edge/fuzz_test.ts
 */
import assert from "node:assert/strict";
import { Rng } from "../shared/rng.ts";
import { createApp, MAX_URL_LENGTH } from "./app.ts";
import { createEngine } from "./engine.ts";
import { loadModel } from "./model.ts";
import { startServer, TINY_LABELS, writeTinyModel } from "./testing.ts";
import { zlibSync } from "fflate";
import { encodePng } from "../shared/image.ts";
import { crc32, decodePngInput } from "../shared/png_input.ts";
import { concat, grayPng, ihdr, pngChunk, SIGNATURE, writePng } from "../shared/png_testing.ts";
import { MAX_BODY_BYTES } from "./routes/mod.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261122);
const COUNT = Number(Deno.env.get("FUZZ_COUNT") ?? 10_000);
const T = 50;
const DEFAULT_STEPS = 1;
const MAX_WORK = 8;

const engine = await createEngine(
  await loadModel(await writeTinyModel({ T, steps: DEFAULT_STEPS, guidance: 1 })),
  { backend: "wasm", threads: 1 },
);
const app = createApp({ load: () => Promise.resolve(engine), maxWork: MAX_WORK });

const KNOWN = ["seed", "steps", "eta", "n", "scale", "label", "guidance", "format"];
const ROUTES = ["/", "/app.js", "/app.css", "/favicon.ico", "/generate", "/model", "/healthz"]
  .concat(["/openapi.json"]);

// ---------------------------------------------------------------------------------------------
// The oracle: what the edge documents, written independently of edge/params.ts.

interface Verdict {
  valid: boolean;
  /** Expected issue paths (a set), and the required message per path where fixed. */
  paths: Map<string, RegExp | null>;
  /** Model steps a valid GET runs (one engine run per step). */
  steps: number;
  seed?: number;
  n: number;
  format: "png" | "json";
}

const isDigits = (s: string) => s.length > 0 && [...s].every((c) => c >= "0" && c <= "9");

function isDecimal(s: string): boolean {
  // sign? (digits [. digits?] | . digits) (e sign? digits)?
  const m = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.exec(s);
  return m !== null && Number.isFinite(Number(s));
}

const intIn = (s: string, lo: number, hi: number) =>
  isDigits(s) && Number(s) >= lo && Number(s) <= hi && Number.isInteger(Number(s));
const numIn = (s: string, lo: number, hi: number) =>
  isDecimal(s) && Number(s) >= lo && Number(s) <= hi;

function labelIndex(s: string): number | undefined {
  const i = TINY_LABELS.indexOf(s);
  if (i >= 0) return i;
  return isDigits(s) && Number(s) < TINY_LABELS.length ? Number(s) : undefined;
}

function oracle(q: URLSearchParams): Verdict {
  const counts = new Map<string, number>();
  const last = new Map<string, string>();
  for (const [k, v] of q) {
    counts.set(k, (counts.get(k) ?? 0) + 1);
    last.set(k, v);
  }
  const paths = new Map<string, RegExp | null>();
  for (const [k, c] of counts) {
    if (!KNOWN.includes(k)) paths.set(k, /^unknown parameter$/);
    else if (c > 1) paths.set(k, /more than once/);
  }
  const ok: Record<string, (s: string) => boolean> = {
    seed: (s) => intIn(s, 0, 0xffffffff),
    steps: (s) => intIn(s, 1, T),
    eta: (s) => numIn(s, 0, 1),
    n: (s) => intIn(s, 1, 64),
    scale: (s) => intIn(s, 1, 16),
    label: (s) => labelIndex(s) !== undefined,
    guidance: (s) => numIn(s, 0, 100),
    format: (s) => s === "png" || s === "json",
  };
  for (const [k, v] of last) {
    if (KNOWN.includes(k) && !ok[k](v) && !paths.has(k)) paths.set(k, null);
  }
  const steps = last.has("steps") ? Number(last.get("steps")) : DEFAULT_STEPS;
  const n = last.has("n") ? Number(last.get("n")) : 1;
  const label = last.has("label") ? labelIndex(last.get("label")!) : undefined;
  const guidance = last.has("guidance") ? Number(last.get("guidance")) : 1;
  const passes = label !== undefined && guidance !== 0 && guidance !== 1 ? 2 : 1;
  if (paths.size === 0 && n * steps * passes > MAX_WORK) paths.set("n", /exceeds the cap/);
  return {
    valid: paths.size === 0,
    paths,
    steps,
    seed: last.has("seed") ? Number(last.get("seed")) : undefined,
    n,
    format: last.get("format") === "json" ? "json" : "png",
  };
}

// ---------------------------------------------------------------------------------------------
// The generator.

class Gen {
  constructor(readonly rng: Rng) {}
  pick<T>(a: readonly T[]): T {
    return a[this.rng.int(a.length)];
  }
  chance(p: number): boolean {
    return this.rng.uniform() < p;
  }
  int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1);
  }
}

const JUNK = [
  "",
  " ",
  "+",
  "-",
  ".",
  "-1",
  "-0",
  "+1",
  "%2B1",
  "%2b1",
  "1.5",
  "1.0",
  "1.",
  ".5",
  "1e3",
  "1E3",
  "1e-3",
  "1e400",
  "-1e400",
  "0x10",
  "0X10",
  "0b1",
  "0o7",
  "NaN",
  "nan",
  "Infinity",
  "-Infinity",
  "%2BInfinity",
  "1_000",
  "1,2",
  " 1",
  "1 ",
  "%201",
  "1%20",
  "%091",
  "1%0A",
  "%0d%0a1",
  "%zz",
  "%",
  "%0",
  "%00",
  "1%00",
  "%C0%AF",
  "%E0%80%AF",
  "%ED%A0%80",
  "%FF",
  "%F0%9F%99%82",
  "🙂",
  "é",
  "%C3%A9",
  "١",
  "１",
  "true",
  "null",
  "undefined",
  "[]",
  "{}",
  "'1'",
  '"1"',
  "1;",
  "1#x",
  "#",
  "&",
  "=",
  "==1",
  "1=1",
  "%26",
  "%3D",
  "9".repeat(40),
  "0".repeat(30) + "1",
  "4294967295",
  "4294967296",
  "18446744073709551616",
  "-4294967295",
  "0",
  "00",
  "1",
  "2",
  "50",
  "51",
  "64",
  "65",
  "16",
  "17",
  "100",
  "100.0001",
  "png",
  "PNG",
  "json",
  "gif",
  "png ",
  "zero",
  "Zero",
  "one",
  "two",
  "three",
  "3",
  "02",
  "seed",
  "<script>",
  "../../etc/passwd",
  "\\",
  "%5C",
];

const UNKNOWN = [
  "size",
  "SEED",
  "Seed",
  "N",
  "seed ",
  " seed",
  "seed[]",
  "seed.x",
  "seeds",
  "step",
  "labels",
  "",
  "x",
  "🙂",
  "sé",
  "n%00",
  "%00",
  "a b",
  "callback",
  "q",
  "width",
  "%zz",
  "steps%20",
];

function validValue(g: Gen, key: string): string {
  switch (key) {
    case "seed":
      return g.pick([
        () => String(g.rng.nextU32()),
        () => "0",
        () => "4294967295",
        () => "000" + g.int(0, 99),
        () => String(g.int(0, 1000)),
      ])();
    case "steps":
      return g.pick(["1", "2", "01"]);
    case "n":
      return g.pick(["1", "2", "1", "001"]);
    case "scale":
      return String(g.int(1, 16));
    case "eta":
      return g.pick(["0", "1", "0.5", ".5", "5e-1", "%2B0.25", "1.", "0e0", "0.000", "1E0"]);
    case "label":
      return g.pick(["zero", "one", "two", "0", "1", "2", "00"]);
    case "guidance":
      return g.pick(["0", "1", "1.0", "2", "1e1", "100", "0.5", "%2B3"]);
    default:
      return g.pick(["png", "json"]);
  }
}

function randomValue(g: Gen): string {
  switch (g.int(0, 5)) {
    case 0:
      return String(g.int(-100, 100));
    case 1:
      return String((g.rng.uniform() - 0.5) * 10 ** g.int(-5, 30));
    case 2: {
      const chars = "0123456789+-.eExX _%&=#;,/?abcdefz";
      return Array.from({ length: g.int(0, 12) }, () => g.pick([...chars])).join("");
    }
    case 3: // raw bytes, percent-encoded (often invalid UTF-8)
      return Array.from(
        { length: g.int(1, 6) },
        () => "%" + g.int(0, 255).toString(16).padStart(2, "0"),
      ).join("");
    default:
      return g.pick(JUNK);
  }
}

/** Spell a decoded-looking key or value in one of several encodings. */
function spell(g: Gen, s: string): string {
  switch (g.int(0, 9)) {
    case 0:
      return encodeURIComponent(s);
    case 1: // every character percent-encoded (UTF-8), upper or lower case hex
      return [...new TextEncoder().encode(s)].map((b) => {
        const h = b.toString(16).padStart(2, "0");
        return "%" + (g.chance(0.5) ? h.toUpperCase() : h);
      }).join("");
    default:
      return s; // as is: '+', '&', '#', '%' keep their URL meaning
  }
}

function longQuery(g: Gen): string {
  const size = g.chance(0.3) ? g.int(500, 4_000) : g.int(20_000, 110_000);
  switch (g.int(0, 3)) {
    case 0:
      return "seed=" + "1".repeat(size);
    case 1:
      return "label=" + "x".repeat(size);
    case 2: {
      const parts: string[] = [];
      for (let len = 0, i = 0; len < size; i++) {
        const p = `p${i}=${i}`;
        parts.push(p);
        len += p.length + 1;
      }
      return parts.join("&");
    }
    default:
      return "steps=1&" + "n=1&".repeat(size / 4) + "seed=1";
  }
}

function query(g: Gen): string {
  if (g.chance(0.005)) return longQuery(g);
  const validMode = g.chance(0.04);
  const parts: string[] = [];
  const count = validMode ? g.int(0, 5) : g.int(1, 6);
  const keys = validMode ? g.rng.shuffle([...KNOWN]).slice(0, count) : [];
  for (let i = 0; i < count; i++) {
    let key: string;
    let value: string;
    if (validMode) {
      key = keys[i];
      value = validValue(g, key);
    } else {
      key = g.chance(0.8) ? g.pick(KNOWN) : g.pick(UNKNOWN);
      value = g.chance(0.35) ? validValue(g, key) : randomValue(g);
    }
    if (validMode || g.chance(0.85)) {
      parts.push(`${spell(g, key)}=${validMode ? value : spell(g, value)}`);
    } else parts.push(g.pick([key, `${key}=`, `=${value}`, `${key}==${value}`, `${key}&`]));
  }
  const sep = validMode ? "&" : g.pick(["&", "&", "&", "&&", ";", "&amp;"]);
  let q = parts.join(sep);
  if (!validMode && g.chance(0.05)) q = g.pick(["&", "?", "#"]) + q;
  if (!validMode && g.chance(0.05)) q += g.pick(["&", "#frag", "&#"]);
  return q;
}

const ODD_PATHS = [
  "/generate/",
  "/GENERATE",
  "/Generate",
  "//generate",
  "/generate//",
  "/generate%2F",
  "/generate%2f",
  "/gener%61te",
  "/generate/../generate",
  "/./generate",
  "/generate;x=1",
  "/generate.json",
  "/generate.png",
  "/generate%00",
  "/%00",
  "/%zz",
  "/%",
  "/%C0%AF",
  "/%E2%80%AEetareneg",
  "/🙂",
  "/healthz/",
  "/healthz/x",
  "/model/x",
  "/api/generate",
  "/generate/generate",
  "/" + "a".repeat(8000),
  "/generate%20",
  "/ generate",
  "/generate?",
  "/..",
  "/.env",
  "/favicon.ico/",
  "/openapi.json/x",
];

const METHODS = ["POST", "PUT", "DELETE", "PATCH", "patch", "OPTIONS", "PROPFIND", "FOO"];

interface Case {
  method: string;
  url: string;
  body?: string;
}

function makeCase(g: Gen): Case {
  const r = g.rng.uniform();
  const q = query(g);
  const sep = g.chance(0.97) ? "?" : "";
  if (r < 0.8) return { method: "GET", url: `/generate${sep}${q}` };
  if (r < 0.88) return { method: "HEAD", url: `/generate${sep}${q}` };
  if (r < 0.94) {
    const method = g.pick(METHODS);
    const body = ["POST", "PUT", "PATCH", "patch"].includes(method) && g.chance(0.5)
      ? JSON.stringify({ seed: 1 })
      : undefined;
    return { method, url: `/generate?${q}`, body };
  }
  return { method: g.pick(["GET", "GET", "HEAD", "POST"]), url: g.pick(ODD_PATHS) };
}

// ---------------------------------------------------------------------------------------------
// Checking one response.

interface ErrorBody {
  error: unknown;
  issues?: { path: unknown; message: unknown }[];
}

const short = (s: string) => s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s;

/** Hono routes by the percent-decoded path (decodeURI; left as is when that throws). */
function routed(pathname: string): string {
  try {
    return decodeURI(pathname);
  } catch {
    return pathname;
  }
}

async function jsonError(
  r: Response,
  fail: (m: string) => never,
  head = false,
): Promise<ErrorBody> {
  if (!/^application\/json/.test(r.headers.get("Content-Type") ?? "")) {
    fail(`Content-Type ${r.headers.get("Content-Type")}`);
  }
  if (head && r.body === null) return { error: "" }; // HEAD: headers only
  let body: ErrorBody;
  try {
    body = await r.json();
  } catch (e) {
    fail(`body is not JSON: ${e}`);
  }
  if (typeof body.error !== "string" || body.error === "") fail(`no error string`);
  return body;
}

interface Tally {
  status: Map<number, number>;
  sampledSteps: number;
  valid: number;
}

async function check(i: number, c: Case, t: Tally): Promise<void> {
  const fail = (m: string): never => {
    throw new assert.AssertionError({
      message: `fuzz seed ${SEED}, case ${i}: ${c.method} ${short(c.url)}\n  ${m}`,
    });
  };
  const r = await app.request(c.url, { method: c.method, body: c.body });
  t.status.set(r.status, (t.status.get(r.status) ?? 0) + 1);
  if (r.status >= 500) fail(`status ${r.status}: ${short(await r.text())}`);
  const url = new URL(`http://localhost${c.url}`);
  const path = routed(url.pathname);
  if (url.pathname.length + url.search.length > MAX_URL_LENGTH) {
    if (r.status !== 414) fail(`status ${r.status}, want 414 (URI too long)`);
    await jsonError(r, fail, c.method === "HEAD");
    return;
  }

  if (path !== "/generate") {
    if (ROUTES.includes(path)) {
      // A real route reached by an odd spelling: anything but a 5xx (checked above) is fine.
      await r.body?.cancel();
      return;
    }
    if (r.status !== 404) fail(`status ${r.status}, want 404 for path ${short(path)}`);
    await jsonError(r, fail, c.method === "HEAD");
    return;
  }
  if (c.method === "OPTIONS") {
    if (r.status !== 204) fail(`OPTIONS status ${r.status}, want 204`);
    return;
  }
  if (c.method !== "GET" && c.method !== "HEAD") {
    if (r.status !== 405) fail(`status ${r.status}, want 405`);
    if (r.headers.get("Allow") !== "GET, HEAD, OPTIONS") fail(`Allow ${r.headers.get("Allow")}`);
    await jsonError(r, fail);
    return;
  }
  const v = oracle(url.searchParams);
  const head = c.method === "HEAD";
  if (v.valid) {
    t.valid++;
    if (r.status !== 200) fail(`status ${r.status}, want 200: ${short(await r.text())}`);
    if (v.seed !== undefined && r.headers.get("X-Seed") !== String(v.seed)) {
      fail(`X-Seed ${r.headers.get("X-Seed")}, want ${v.seed}`);
    }
    const type = r.headers.get("Content-Type") ?? "";
    if (!type.startsWith(v.format === "json" ? "application/json" : "image/png")) {
      fail(`Content-Type ${type} for format ${v.format}`);
    }
    if (head) {
      if (r.body !== null) fail("HEAD with a body");
      return;
    }
    t.sampledSteps += v.steps;
    const bytes = new Uint8Array(await r.arrayBuffer());
    if (v.format === "png") {
      if (bytes[0] !== 0x89 || bytes[1] !== 0x50) fail("not a PNG");
    } else {
      const body = JSON.parse(new TextDecoder().decode(bytes));
      assert.deepEqual(body.shape, [v.n, 1, 8, 8], `case ${i}: ${c.url}`);
    }
    return;
  }
  if (r.status !== 400) fail(`status ${r.status}, want 400 (issues ${[...v.paths.keys()]})`);
  if (head) {
    if (!/^application\/json/.test(r.headers.get("Content-Type") ?? "")) fail("HEAD 400 type");
    return;
  }
  const body = await jsonError(r, fail);
  if (body.error !== "invalid query parameters") fail(`error ${JSON.stringify(body.error)}`);
  const issues = body.issues;
  if (!Array.isArray(issues) || issues.length === 0) return fail("no issues");
  for (const issue of issues) {
    if (typeof issue.path !== "string" || typeof issue.message !== "string" || !issue.message) {
      fail(`malformed issue ${JSON.stringify(issue)}`);
    }
  }
  const got = new Set(issues.map((x) => x.path as string));
  const want = new Set(v.paths.keys());
  const show = (s: Set<string>) => JSON.stringify([...s].map(short).sort());
  if (got.size !== want.size || [...want].some((p) => !got.has(p))) {
    fail(`issue paths ${show(got)}, want ${show(want)}: ${short(JSON.stringify(issues))}`);
  }
  for (const [p, message] of v.paths) {
    if (message && !issues.some((x) => x.path === p && message.test(x.message as string))) {
      fail(`no issue on ${JSON.stringify(short(p))} matching ${message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

Deno.test(`fuzz: ${COUNT} generated requests (seed ${SEED}) never 5xx, answer as documented`, async () => {
  console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} to reproduce), ${COUNT} requests`);
  const g = new Gen(new Rng(SEED));
  const tally: Tally = { status: new Map(), sampledSteps: 0, valid: 0 };
  const runs = engine.runs;
  let longest = 0;
  for (let i = 0; i < COUNT; i++) {
    const c = makeCase(g);
    longest = Math.max(longest, c.url.length);
    await check(i, c, tally);
  }
  assert.equal(engine.runs - runs, tally.sampledSteps, "model steps run ≠ steps of valid GETs");
  const h = await app.request("/healthz");
  assert.equal(h.status, 200);
  const health = await h.json();
  assert.equal(health.status, "ready");
  assert.deepEqual(health.queue, { inFlight: 0, waiting: 0 });
  const statuses = [...tally.status].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`);
  console.log(
    `statuses {${statuses.join(", ")}}; ${tally.valid} valid, ${tally.sampledSteps} model ` +
      `steps run; longest URL ${longest} chars`,
  );
  // The generator must actually reach every outcome it is meant to test.
  for (const s of [200, 204, 400, 404, 405, 414]) assert.ok(tally.status.has(s), `no ${s} answers`);
  assert.ok(tally.valid >= 100 && longest >= 100_000, `too few valid (${tally.valid}) or long`);
});

Deno.test("unknown parameters are refused (strict), case-sensitively, without sampling", async () => {
  const runs = engine.runs;
  for (const q of ["seed=1&size=3", "SEED=1", "seed=1&Steps=2", "seed=1&callback=x", "=1"]) {
    const r = await app.request(`/generate?${q}`);
    assert.equal(r.status, 400, q);
    const body = await r.json();
    const unknown = [...new URLSearchParams(q).keys()].filter((k) => !KNOWN.includes(k));
    assert.deepEqual(body.issues, unknown.map((path) => ({ path, message: "unknown parameter" })));
  }
  assert.equal(engine.runs, runs);
});

Deno.test("parameters named like Object.prototype members, given once, are just unknown", async () => {
  for (const key of ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]) {
    const r = await app.request(`/generate?seed=1&${key}=1`);
    assert.equal(r.status, 400, key);
    assert.deepEqual((await r.json()).issues, [{ path: key, message: "unknown parameter" }], key);
  }
});

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 against the real server (`deno serve edge/main.ts`): request lines and headers
// that no Request object can carry (bytes outside URL syntax, malformed Host, bodies on GET).

/** Send raw bytes on a fresh connection; the status line of the answer, or "" if none came. */
async function rawStatus(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  // A guard against a server that never answers (not a timing assertion).
  const guard = setTimeout(() => conn.close(), 10_000);
  let text = "";
  try {
    await conn.write(new TextEncoder().encode(request));
    const buf = new Uint8Array(16_384);
    const dec = new TextDecoder();
    while (!text.includes("\r\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n));
    }
  } catch { /* reset or closed by the guard: no answer */ }
  clearTimeout(guard);
  try {
    conn.close();
  } catch { /* closed already */ }
  return text.split("\r\n")[0];
}

function rawCases(rng: Rng): { what: string; request: string; expect?: number }[] {
  const req = (target: string, headers = "Host: x\r\n", method = "GET", expect?: number) => ({
    what: `${method} ${short(target)} ${JSON.stringify(short(headers))}`,
    request: `${method} ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`,
    expect,
  });
  const cases = [
    req("/generate?seed=1"),
    req("/generate?seed=%ZZ"),
    req("/generate?seed=\x01"),
    req("/generate?seed=é"),
    req("/gen%ERATE"),
    req("/%C0%AF"),
    req("http://elsewhere/generate?seed=1"),
    req("*", undefined, "OPTIONS"),
    req("*"),
    req("generate"),
    req("/generate?" + "a".repeat(100_000)),
    req("/generate?seed=1", `Host: x\r\nIf-None-Match: ${'"a",'.repeat(2000)}\r\n`),
    req("/generate?seed=1", "Host: x\r\nContent-Length: 5\r\n\r\nhello", "GET", 413),
    req(
      "/generate?seed=1",
      "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
      "GET",
      413,
    ),
    req("/generate?seed=1", ""),
    req("/generate?seed=1", "Host: \r\n"),
    req("/generate", undefined, "BREW"),
    req("/generate", undefined, "TRACE"),
    // Host values that are no URL authority: the URL the runtime builds from them is invalid.
    req("/healthz", "Host: a b\r\n", "GET", 400),
    req("/generate?seed=1", "Host: [::1\r\n", "GET", 400),
    req("/model", "Host: x:99999\r\n", "GET", 400),
  ];
  // Uploads over the wire: a short body, a declared length over the limit (refused from the
  // header, body never sent), a broken multipart body, a chunked body of junk.
  const post = (what: string, target: string, headers: string, body: string, expect: number) => ({
    what,
    request: `POST ${target} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n${body}`,
    expect,
  });
  cases.push(
    post("short PNG", "/denoise", "Content-Type: image/png\r\nContent-Length: 5\r\n", "hello", 400),
    post(
      "over the limit",
      "/denoise",
      "Content-Type: image/png\r\nContent-Length: 2000000\r\n",
      "",
      413,
    ),
    post(
      "broken multipart",
      "/inpaint",
      "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 5\r\n",
      "--x\r\n",
      400,
    ),
    post(
      "chunked junk",
      "/denoise",
      "Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n",
      "5\r\nhello\r\n0\r\n\r\n",
      400,
    ),
    post("no type", "/denoise", "Content-Length: 3\r\n", "abc", 415),
  );
  const ascii = "abcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%\"<>\\^`{|}";
  for (let i = 0; i < 100; i++) {
    const target = "/generate?" + Array.from(
      { length: 1 + rng.int(30) },
      () => rng.uniform() < 0.9 ? ascii[rng.int(ascii.length)] : String.fromCharCode(rng.int(256)),
    ).join("");
    cases.push(req(target));
  }
  return cases;
}

Deno.test("raw HTTP/1.1 to deno serve: odd request lines and headers never get a 5xx", async () => {
  const server = await startServer({ MODEL: await writeTinyModel({ T, steps: 1 }) });
  const port = Number(new URL(server.url).port);
  const failures: string[] = [];
  try {
    for (const c of rawCases(new Rng(SEED))) {
      const status = await rawStatus(port, c.request);
      const want = c.expect
        ? new RegExp(`^HTTP/1\\.[01] ${c.expect}\\b`)
        : /^HTTP\/1\.[01] [1-4]\d\d\b/;
      if (!want.test(status)) {
        failures.push(`${c.what} → ${JSON.stringify(status || "no answer")}`);
      }
    }
    const h = await fetch(`${server.url}/healthz`);
    assert.equal((await h.json()).status, "ready");
  } finally {
    await server.close();
  }
  assert.deepEqual(failures, [], `fuzz seed ${SEED}:\n${failures.join("\n")}`);
});

// ---------------------------------------------------------------------------------------------
// Uploads: ≥ 1,000 corrupted, truncated, oversized and odd PNG bodies to POST /denoise and
// multipart bodies to POST /inpaint. Never a 5xx; a refusal is 400/413/415 JSON naming a part
// or parameter; 200 exactly when every uploaded PNG is one the decoder accepts; each 200 runs
// exactly its model calls (1 here) and the server stays ready with an idle queue.

const UPLOAD_COUNT = Number(Deno.env.get("FUZZ_UPLOADS") ?? 1500);

/** Valid PNGs of assorted types and sizes (our writer and fast-png's encoder). */
function basePng(g: Gen): Uint8Array {
  const w = g.int(1, 40), h = g.int(1, 40);
  switch (g.int(0, 4)) {
    case 0:
      return grayPng(w, h, Array.from({ length: w * h }, () => g.int(0, 255)));
    case 1:
      return encodePng({
        width: w,
        height: h,
        channels: 4,
        data: Uint8Array.from({ length: w * h * 4 }, () => g.int(0, 255)),
      });
    case 2:
      return writePng({
        width: w,
        height: h,
        depth: g.pick([1, 2, 4, 8] as const),
        colorType: 3,
        samples: Array.from({ length: w * h }, () => g.int(0, 1)),
        palette: [[0, 0, 0], [255, 255, 255]],
      });
    case 3:
      return writePng({
        width: w,
        height: h,
        depth: 16,
        colorType: 2,
        samples: Array.from({ length: w * h * 3 }, () => g.int(0, 65535)),
      });
    default:
      return writePng({
        width: w,
        height: h,
        depth: g.pick([1, 2, 4] as const),
        colorType: 0,
        samples: Array.from({ length: w * h }, () => g.int(0, 1)),
      });
  }
}

/** Set IHDR's width/height and, usually, a CRC that matches (so only the size is wrong). */
function withSize(png: Uint8Array, w: number, h: number, fixCrc: boolean): Uint8Array {
  const out = png.slice();
  const v = new DataView(out.buffer);
  v.setUint32(16, w >>> 0);
  v.setUint32(20, h >>> 0);
  if (fixCrc) v.setUint32(29, crc32(out.subarray(12, 29)));
  return out;
}

/** One corruption of a valid PNG (or something that is no PNG at all). */
function corrupt(g: Gen, png: Uint8Array): Uint8Array {
  switch (g.int(0, 9)) {
    case 0:
      return png; // intact
    case 1:
      return png.subarray(0, g.int(0, png.length - 1)); // truncated
    case 2: {
      const out = png.slice(); // flipped bytes
      for (let k = g.int(1, 4); k > 0; k--) out[g.int(0, out.length - 1)] ^= 1 << g.int(0, 7);
      return out;
    }
    case 3: {
      const at = g.int(0, png.length); // inserted junk
      const junk = Uint8Array.from({ length: g.int(1, 30) }, () => g.int(0, 255));
      return concat([png.subarray(0, at), junk, png.subarray(at)]);
    }
    case 4:
      return withSize(
        png,
        g.pick([0, 5000, 65536, 1025, 0x7fffffff, 0xffffffff]),
        g.int(1, 5000),
        g.chance(0.8),
      );
    case 5: // a zlib bomb behind a small, consistent header
      return concat([
        SIGNATURE,
        ihdr(g.int(1, 16), g.int(1, 16), 8, 0),
        pngChunk("IDAT", zlibSync(new Uint8Array(g.int(1, 4) * 1_000_000))),
        pngChunk("IEND", new Uint8Array(0)),
      ]);
    case 6: {
      const out = png.slice(); // a chunk length that runs past the end
      new DataView(out.buffer).setUint32(8, g.pick([14, 1000, 0x7fffffff, 0xffffffff]));
      return out;
    }
    case 7:
      return Uint8Array.from({ length: g.int(0, 200) }, () => g.int(0, 255)); // noise
    case 8:
      return new TextEncoder().encode(
        g.pick(["GIF89a", "\xff\xd8\xff\xe0JFIF", "", "{}", "P5 1 1 255\n\0"]),
      );
    default:
      return concat([png.subarray(0, 8), png.subarray(g.int(8, png.length))]); // chunks dropped
  }
}

const accepted = (bytes: Uint8Array) => {
  try {
    decodePngInput(bytes);
    return true;
  } catch {
    return false;
  }
};

interface UploadCase {
  what: string;
  path: string;
  init: RequestInit;
  /** Statuses allowed; 200 only when `ok`. */
  ok: boolean;
  allowed: number[];
}

function uploadCase(g: Gen, i: number): UploadCase {
  const png = corrupt(g, basePng(g));
  if (i % 5 < 3) {
    // POST /denoise with a PNG body (sometimes the wrong type, a bad strength, or too big).
    const type = g.chance(0.9)
      ? "image/png"
      : g.pick(["image/jpeg", "text/plain", "", "image/PNG; x=1"]);
    const strength = g.chance(0.85) ? null : g.pick(["0", "2", "x", "0.5&strength=0.5", "1e-9"]);
    const big = g.chance(0.03);
    const body = big ? concat([png, new Uint8Array(MAX_BODY_BYTES)]) : png;
    const typeOk = type.split(";")[0].trim().toLowerCase() === "image/png";
    const strengthOk = strength === null || strength === "1e-9";
    const ok = !big && typeOk && strengthOk && accepted(png);
    return {
      what: `denoise ${png.length} B type ${JSON.stringify(type)} strength ${strength} big ${big}`,
      path: `/denoise?seed=${i}${strength === null ? "" : `&strength=${strength}`}`,
      init: {
        method: "POST",
        body: body as BodyInit,
        headers: type ? { "Content-Type": type } : {},
      },
      ok,
      allowed: ok ? [200] : [400, 413, 415],
    };
  }
  // POST /inpaint with multipart bodies: parts missing, repeated, extra, text, mis-typed, raw.
  const mask = corrupt(g, basePng(g));
  const f = new FormData();
  const parts: [string, Uint8Array | string, string][] = [];
  if (g.chance(0.9)) parts.push(["image", png, "image/png"]);
  if (g.chance(0.85)) parts.push(["mask", mask, g.chance(0.9) ? "image/png" : "image/gif"]);
  if (g.chance(0.1)) parts.push([g.pick(["image", "extra", "Mask"]), png, "image/png"]);
  if (g.chance(0.05)) parts.push(["mask", "white", ""]);
  for (const [k, v, t] of parts) {
    if (typeof v === "string") f.append(k, v);
    else f.append(k, new Blob([v as BlobPart], { type: t }), "p.png");
  }
  const names = parts.map(([k]) => k);
  const ok = names.length === 2 && names.includes("image") && names.includes("mask") &&
    parts.every(([, v, t]) => typeof v !== "string" && t === "image/png") && accepted(png) &&
    accepted(mask);
  if (g.chance(0.2)) {
    // Raw multipart bytes, then mangled: the parser's errors must be 400s too.
    const boundary = "b" + g.int(0, 1e6);
    const raw = concat([
      new TextEncoder().encode(
        `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n` +
          `Content-Type: image/png\r\n\r\n`,
      ),
      png,
      new TextEncoder().encode(`\r\n--${boundary}--\r\n`),
    ]);
    const body = corrupt(g, raw);
    return {
      what: `inpaint raw multipart ${body.length} B`,
      path: "/inpaint?seed=1",
      init: {
        method: "POST",
        body: body as BodyInit,
        headers: {
          "Content-Type": g.pick([
            `multipart/form-data; boundary=${boundary}`,
            "multipart/form-data",
            "multipart/mixed; boundary=x",
          ]),
        },
      },
      ok: false,
      allowed: [400, 415],
    };
  }
  return {
    what: `inpaint parts ${JSON.stringify(names)}`,
    path: `/inpaint?seed=${i}`,
    init: { method: "POST", body: f },
    ok,
    allowed: ok ? [200] : [400, 413, 415],
  };
}

const UPLOAD_PATHS = new Set([
  "body",
  "Content-Type",
  "image",
  "mask",
  "extra",
  "Mask",
  "strength",
]);

Deno.test(`fuzz: ${UPLOAD_COUNT} corrupted PNG and multipart uploads (seed ${SEED}) get 4xx JSON, never 5xx`, async () => {
  const g = new Gen(new Rng(SEED ^ 0x55));
  const runs = engine.runs;
  const failures: string[] = [];
  const status = new Map<number, number>();
  let ok = 0;
  for (let i = 0; i < UPLOAD_COUNT; i++) {
    const c = uploadCase(g, i);
    const r = await app.request(c.path, c.init);
    status.set(r.status, (status.get(r.status) ?? 0) + 1);
    const fail = (m: string) =>
      failures.length < 20 && failures.push(`case ${i} (${c.what}): ${m}`);
    if (!c.allowed.includes(r.status)) {
      fail(`status ${r.status}, want ${c.allowed}: ${short(await r.text())}`);
    } else if (r.status === 200) {
      ok++;
      const b = new Uint8Array(await r.arrayBuffer());
      if (b[0] !== 0x89 || b[1] !== 0x50) fail("200 without a PNG");
    } else {
      const body = await r.json().catch(() => null);
      if (!body || typeof body.error !== "string") fail("refusal without a JSON error");
      else if (!Array.isArray(body.issues) || body.issues.length === 0) fail("no issues");
      else {
        for (const issue of body.issues) {
          if (!UPLOAD_PATHS.has(issue.path)) fail(`issue path ${JSON.stringify(issue.path)}`);
        }
      }
    }
  }
  assert.deepEqual(failures, [], `FUZZ_SEED=${SEED}:\n${failures.join("\n")}`);
  assert.equal(engine.runs - runs, ok, "model calls ≠ one per accepted upload");
  const statuses = [...status].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`);
  console.log(`uploads: statuses {${statuses.join(", ")}}`);
  for (const s of [200, 400, 413, 415]) assert.ok(status.has(s), `no ${s} answers`);
  const h = await (await app.request("/healthz")).json();
  assert.equal(h.status, "ready");
  assert.deepEqual(h.queue, { inFlight: 0, waiting: 0 });
});
