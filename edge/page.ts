/**
 * The HTML page at `/`: a grid from `/generate` with seed / steps / spacing / sampler / eta / label /
 * n / guidance controls (eta only for the samplers that take it; samplers needing statistics the
 * card lacks are disabled); clicking the image draws a new random seed; "animate" asks for
 * `format=apng` (the denoising, one x̂₀ frame per step, which the browser plays). Below it a
 * drawing pad: in "draw" mode the mouse draws white on black (on a colour card, in the colour
 * of a picker) and "denoise" sends the pad as a PNG to `POST /denoise` (a rough digit or emoji
 * comes back clean); in "inpaint" mode the pad shows a fresh sample, the mouse paints the region
 * to regenerate (translucent red on gray cards, translucent gray on colour ones; a white-on-black
 * mask behind it) and "inpaint" sends both to `POST /inpaint`. No inline script or style, so the CSP is
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
  <label>classifier <input id="classifier_scale" name="classifier_scale" type="number" min="0" step="0.5" placeholder="0" title="classifier guidance toward the label (the card's classifier)"></label>
  <label>animate <input id="animate" name="animate" type="checkbox"></label>
  <button id="go" type="submit">generate</button>
</form>
<figure>
  <img id="grid" alt="generated samples (click for a new seed)" title="click for a new seed">
  <figcaption id="status"></figcaption>
</figure>
<h2>Draw, denoise, inpaint</h2>
<form id="pad-controls" novalidate>
  <label>mode <select id="mode"><option value="draw">draw</option>
    <option value="inpaint">inpaint a sample</option></select></label>
  <label>strength <input id="strength" type="number" min="0.05" max="1" step="0.05" value="0.5"></label>
  <label>resample <input id="resample" type="number" min="1" max="10" step="1" value="1"></label>
  <label id="brush-label" hidden>colour <input id="brush" type="color" value="#ffcc33"></label>
  <button id="clear" type="button">clear</button>
  <button id="send" type="submit">denoise</button>
</form>
<div id="pads">
  <canvas id="pad" width="280" height="280" title="draw with the mouse"></canvas>
  <img id="result" alt="the denoised or inpainted image">
</div>
<p id="pad-status"></p>
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
#pads { display: flex; gap: 1em; align-items: start; }
#pad { background: #000; cursor: crosshair; touch-action: none; width: 280px; height: 280px; }
#result { image-rendering: pixelated; width: 280px; height: 280px; background: #eee; }
#pad-status { color: #666; }
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
  for (const k of ["steps", "spacing", "sampler", "eta", "n", "guidance", "classifier_scale"]) {
    if ($(k).value !== "" && !$(k).disabled) q.set(k, $(k).value);
  }
  if ($("label").value !== "") q.set("label", $("label").value);
  q.set("scale", "4");
  if ($("animate").checked) q.set("format", "apng");
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

// The drawing pad. Draw mode: white strokes on black (a colour card: the picker's colour), sent to
// /denoise. Inpaint mode: a sample under translucent strokes; the strokes also go white on a
// black mask canvas, sent with the sample.
const PAD = 280;
const mask = document.createElement("canvas");
mask.width = mask.height = PAD;
let card = null, base = null, drawing = false, last = null;
const colour = () => card && card.image.channels === 3;

/** The pad's scale for the model's images (the API allows up to 16). */
const padScale = () => Math.min(16, Math.max(1, Math.floor(PAD / card.image.size)));

function clearPad() {
  const ctx = $("pad").getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, PAD, PAD);
  const m = mask.getContext("2d");
  m.fillStyle = "#000";
  m.fillRect(0, 0, PAD, PAD);
  if ($("mode").value === "inpaint" && base) ctx.drawImage(base.bitmap, 0, 0, PAD, PAD);
}

function stroke(from, to) {
  const inpaint = $("mode").value === "inpaint";
  const paint = inpaint
    ? (colour() ? "rgba(160,160,160,0.75)" : "rgba(255,0,0,0.6)")
    : (colour() ? $("brush").value : "#fff");
  for (const [ctx, color] of [[$("pad").getContext("2d"), paint],
    ...(inpaint ? [[mask.getContext("2d"), "#fff"]] : [])]) {
    ctx.strokeStyle = color;
    ctx.lineWidth = inpaint ? 36 : 22;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }
}

function at(ev) {
  const r = $("pad").getBoundingClientRect();
  return { x: (ev.clientX - r.left) * PAD / r.width, y: (ev.clientY - r.top) * PAD / r.height };
}

async function newBase() {
  const q = query(true);
  q.set("seed", String(Math.floor(Math.random() * 4294967296)));
  q.set("n", "1");
  q.set("scale", String(padScale()));
  q.delete("format");
  const res = await fetch("/generate?" + q);
  if (!res.ok) return showError($("pad-status"), res);
  const blob = await res.blob();
  base = { blob, bitmap: await createImageBitmap(blob), seed: res.headers.get("X-Seed") };
  clearPad();
  $("pad-status").textContent = "sample seed " + base.seed + ": paint the part to regenerate";
}

async function modeChanged() {
  const inpaint = $("mode").value === "inpaint";
  $("send").textContent = inpaint ? "inpaint" : "denoise";
  $("strength").disabled = inpaint;
  $("resample").disabled = !inpaint;
  clearPad();
  if (inpaint) await newBase();
  else {
    $("pad-status").textContent = colour()
      ? "draw in colour (pick it above), then denoise it"
      : "draw a digit, then denoise it";
  }
}

async function showError(where, res) {
  const err = await res.json();
  const issues = (err.issues || []).map((i) => i.path + ": " + i.message).join("; ");
  where.textContent = "error " + res.status + ": " + err.error + (issues ? " — " + issues : "");
}

const toBlob = (canvas) => new Promise((ok) => canvas.toBlob(ok, "image/png"));

async function send() {
  const inpaint = $("mode").value === "inpaint";
  const q = new URLSearchParams();
  q.set("seed", String(Math.floor(Math.random() * 4294967296)));
  q.set("scale", String(padScale()));
  if ($("label").value !== "") q.set("label", $("label").value);
  let req;
  if (inpaint) {
    if (!base) return;
    if ($("resample").value !== "1") q.set("resample", $("resample").value);
    const form = new FormData();
    form.append("image", base.blob, "image.png");
    form.append("mask", await toBlob(mask), "mask.png");
    req = fetch("/inpaint?" + q, { method: "POST", body: form });
  } else {
    q.set("strength", $("strength").value);
    req = fetch("/denoise?" + q, {
      method: "POST",
      headers: { "Content-Type": "image/png" },
      body: await toBlob($("pad")),
    });
  }
  $("pad-status").textContent = inpaint ? "inpainting…" : "denoising…";
  try {
    const res = await req;
    if (!res.ok) return showError($("pad-status"), res);
    const old = $("result").src;
    $("result").src = URL.createObjectURL(await res.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("pad-status").textContent = (inpaint ? "inpainted" : "denoised") + " · seed " +
      res.headers.get("X-Seed") + " · " + (res.headers.get("Server-Timing") || "");
  } catch (e) {
    $("pad-status").textContent = "error: " + e.message;
  }
}

function initPad() {
  const pad = $("pad");
  pad.addEventListener("pointerdown", (ev) => {
    drawing = true;
    last = at(ev);
    pad.setPointerCapture(ev.pointerId);
    stroke(last, last);
  });
  pad.addEventListener("pointermove", (ev) => {
    if (!drawing) return;
    const p = at(ev);
    stroke(last, p);
    last = p;
  });
  for (const e of ["pointerup", "pointercancel"]) pad.addEventListener(e, () => drawing = false);
  $("clear").addEventListener("click", clearPad);
  $("mode").addEventListener("change", modeChanged);
  $("pad-controls").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  modeChanged();
}

async function init() {
  card = await (await fetch("/model")).json();
  $("model").textContent = card.name + " · " + card.dataset + " · " + card.schedule.kind +
    " schedule, T = " + card.schedule.T;
  // Empty = the card's default, which the server picks (longer for the null class on some cards).
  const ns = card.sampling.nullClassSteps;
  $("steps").placeholder = ns && ns !== card.sampling.steps
    ? card.sampling.steps + " (null class " + ns + ")"
    : String(card.sampling.steps);
  $("steps").max = card.schedule.T;
  $("spacing").value = card.sampling.spacing;
  if (card.sampling.unlabeled === "random-label") $("label").options[0].text = "(any)";
  $("eta").value = card.sampling.eta;
  for (const o of $("sampler").options) o.disabled = SAMPLERS[o.value].analytic && !card.sampling.analytic;
  $("sampler").value = card.sampling.sampler || "ddim";
  samplerChanged();
  $("sampler").addEventListener("change", samplerChanged);
  $("guidance").value = card.sampling.guidance;
  // classifier_scale: with a label (on an unconditional card, one of its classifier's classes).
  const cl = card.classifier;
  $("classifier_scale").disabled = !cl;
  if (cl) $("classifier_scale").placeholder = "0 (try " + cl.scale + ")";
  if (card.labels || cl) {
    (card.labels || cl.labels).forEach((name) => $("label").add(new Option(name, name)));
  } else {
    $("label").disabled = true;
  }
  if (!card.labels) $("guidance").disabled = true;
  $("brush-label").hidden = !colour();
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); run(false); });
  $("grid").addEventListener("click", () => run(true));
  initPad();
  await run(true);
}

init();
`;
