/**
 * The HTML page at `/`: a grid from `/generate` with seed / steps / spacing / sampler / eta / label /
 * n / guidance controls (eta only for the samplers that take it; samplers needing statistics the
 * card lacks are disabled); clicking the image draws a new random seed. No inline script or style, so the CSP is
 * strict: the script and stylesheet are served as separate files (`/app.js`, `/app.css`).
 */
import { SAMPLER_NAMES, SAMPLERS } from "../shared/samplers/mod.ts";
import { SPACINGS } from "../shared/schedule.ts";

const SPACING_OPTIONS = SPACINGS.map((n) => `<option>${n}</option>`).join("");
const SAMPLER_OPTIONS = SAMPLER_NAMES.map((n) => `<option>${n}</option>`).join("");
/** Which samplers take eta / need Analytic-DPM statistics, for the page script. */
const SAMPLER_TRAITS = JSON.stringify(
  Object.fromEntries(
    SAMPLER_NAMES.map((
      n,
    ) => [n, { eta: SAMPLERS[n].usesEta, analytic: SAMPLERS[n].needsAnalytic }]),
  ),
);

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ddpm-edge</title>
<link rel="stylesheet" href="/app.css">
<script type="module" src="/app.js"></script>
</head>
<body>
<h1>ddpm-edge</h1>
<p id="model">loading model…</p>
<form id="controls" novalidate>
  <label>seed <input id="seed" name="seed" type="number" min="0" max="4294967295" step="1"></label>
  <label>steps <input id="steps" name="steps" type="number" min="1" step="1"></label>
  <label>spacing <select id="spacing" name="spacing">${SPACING_OPTIONS}</select></label>
  <label>sampler <select id="sampler" name="sampler">${SAMPLER_OPTIONS}</select></label>
  <label>eta <input id="eta" name="eta" type="number" min="0" max="1" step="0.1"></label>
  <label>n <input id="n" name="n" type="number" min="1" max="64" step="1" value="16"></label>
  <label>label <select id="label" name="label"><option value="">(none)</option></select></label>
  <label>guidance <input id="guidance" name="guidance" type="number" min="0" step="0.5"></label>
  <button id="go" type="submit">generate</button>
</form>
<figure>
  <img id="grid" alt="generated samples (click for a new seed)" title="click for a new seed">
  <figcaption id="status"></figcaption>
</figure>
</body>
</html>
`;

export const APP_CSS = `body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
form { display: flex; flex-wrap: wrap; gap: 0.75em; align-items: end; margin-bottom: 1em; }
label { display: flex; flex-direction: column; gap: 0.2em; }
input { width: 7em; }
#grid { image-rendering: pixelated; cursor: pointer; min-width: 112px; min-height: 112px;
  background: #eee; }
figcaption { color: #666; margin-top: 0.5em; }
`;

/** Browser script (plain ES2020, no build step). */
export const APP_JS = `const $ = (id) => document.getElementById(id);
const SAMPLERS = ${SAMPLER_TRAITS};
let busy = null;

function samplerChanged() {
  $("eta").disabled = !SAMPLERS[$("sampler").value].eta;
}

function query(randomSeed) {
  const q = new URLSearchParams();
  if (!randomSeed && $("seed").value !== "") q.set("seed", $("seed").value);
  for (const k of ["steps", "spacing", "sampler", "eta", "n", "guidance"]) {
    if ($(k).value !== "" && !$(k).disabled) q.set(k, $(k).value);
  }
  if ($("label").value !== "") q.set("label", $("label").value);
  q.set("scale", "4");
  return q;
}

async function run(randomSeed) {
  busy?.abort();
  const ctl = busy = new AbortController();
  $("status").textContent = "generating…";
  try {
    const res = await fetch("/generate?" + query(randomSeed), { signal: ctl.signal });
    if (!res.ok) {
      const err = await res.json();
      const issues = (err.issues || []).map((i) => i.path + ": " + i.message).join("; ");
      $("status").textContent = "error " + res.status + ": " + err.error + (issues ? " — " + issues : "");
      return;
    }
    const blob = await res.blob();
    const old = $("grid").src;
    $("grid").src = URL.createObjectURL(blob);
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("seed").value = res.headers.get("X-Seed");
    $("status").textContent = "seed " + res.headers.get("X-Seed") + " · " +
      (res.headers.get("Server-Timing") || "");
  } catch (e) {
    if (e.name !== "AbortError") $("status").textContent = "error: " + e.message;
  }
}

async function init() {
  const card = await (await fetch("/model")).json();
  $("model").textContent = card.name + " · " + card.dataset + " · " + card.schedule.kind +
    " schedule, T = " + card.schedule.T;
  $("steps").value = card.sampling.steps;
  $("steps").max = card.schedule.T;
  $("spacing").value = card.sampling.spacing;
  if (card.sampling.unlabeled === "random-label") $("label").options[0].text = "(any)";
  $("eta").value = card.sampling.eta;
  for (const o of $("sampler").options) o.disabled = SAMPLERS[o.value].analytic && !card.sampling.analytic;
  $("sampler").value = card.sampling.sampler || "ddim";
  samplerChanged();
  $("sampler").addEventListener("change", samplerChanged);
  $("guidance").value = card.sampling.guidance;
  if (card.labels) {
    card.labels.forEach((name) => $("label").add(new Option(name, name)));
  } else {
    $("label").disabled = $("guidance").disabled = true;
  }
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); run(false); });
  $("grid").addEventListener("click", () => run(true));
  await run(true);
}

init();
`;
