/**
 * The training curve of a run as an SVG a person can open: loss (log scale, raw and smoothed)
 * against step, from `<run>/metrics.jsonl`.
 *
 *   deno run -A scripts/plot_metrics.ts <run dir>/metrics.jsonl [--out loss.svg] [--smooth 25]
 */
import { parseCli, runCli } from "./cli_args.ts";

export interface MetricRow {
  step: number;
  loss: number;
}

const W = 640, H = 360, PAD = { left: 56, right: 16, top: 20, bottom: 40 };

/** Rows of a metrics.jsonl text; lines without a finite step and loss are an error. */
export function parseMetrics(text: string): MetricRow[] {
  const rows = text.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
    const r = JSON.parse(l);
    if (!Number.isFinite(r.step) || !Number.isFinite(r.loss) || r.loss <= 0) {
      throw new Error(`metrics line ${i + 1}: needs a step and a positive loss`);
    }
    return { step: r.step as number, loss: r.loss as number };
  });
  if (rows.length < 2) throw new Error("need at least two logged steps to draw a curve");
  return rows;
}

/** Centred moving average over `k` points (shorter at the ends). */
export function smooth(v: number[], k: number): number[] {
  const h = Math.floor(k / 2);
  return v.map((_, i) => {
    const a = Math.max(0, i - h), b = Math.min(v.length, i + h + 1);
    let s = 0;
    for (let j = a; j < b; j++) s += v[j];
    return s / (b - a);
  });
}

/** The SVG: loss on a log axis (decade ticks), step on a linear axis. */
export function lossCurveSvg(rows: MetricRow[], smoothK = 25, title = "training loss"): string {
  const x0 = rows[0].step, x1 = rows.at(-1)!.step;
  const logs = rows.map((r) => Math.log10(r.loss));
  const lo = Math.floor(Math.min(...logs) * 10) / 10, hi = Math.ceil(Math.max(...logs) * 10) / 10;
  const px = (s: number) => PAD.left + (s - x0) / (x1 - x0 || 1) * (W - PAD.left - PAD.right);
  const py = (l: number) => PAD.top + (hi - l) / (hi - lo || 1) * (H - PAD.top - PAD.bottom);
  const line = (ys: number[]) =>
    rows.map((r, i) => `${px(r.step).toFixed(1)},${py(ys[i]).toFixed(1)}`).join(" ");
  const ticks: string[] = [];
  for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
    for (const m of [1, 2, 5]) {
      const l = d + Math.log10(m);
      if (l < lo || l > hi) continue;
      ticks.push(
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${py(l).toFixed(1)}" y2="${
          py(l).toFixed(1)
        }" stroke="#eee"/>` +
          `<text x="${PAD.left - 6}" y="${(py(l) + 4).toFixed(1)}" text-anchor="end">${
            Number((m * 10 ** d).toPrecision(2))
          }</text>`,
      );
    }
  }
  for (let i = 0; i <= 4; i++) {
    const s = Math.round(x0 + (x1 - x0) * i / 4);
    ticks.push(
      `<text x="${px(s).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${s}</text>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">\n` +
    `<rect width="${W}" height="${H}" fill="white"/>\n${ticks.join("\n")}\n` +
    `<polyline points="${line(logs)}" fill="none" stroke="#9cc3e6" stroke-width="1"/>\n` +
    `<polyline points="${line(smooth(logs, smoothK))}" fill="none" stroke="#1f5f99" ` +
    `stroke-width="2"/>\n` +
    `<text x="${PAD.left}" y="14">${title} (ε-MSE, log scale; dark: mean of ${smoothK} logs)</text>\n` +
    `<text x="${(W + PAD.left) / 2}" y="${H - 6}" text-anchor="middle">step</text>\n</svg>\n`;
}

if (import.meta.main) {
  const { values, positionals } = await runCli(() =>
    parseCli({
      args: Deno.args,
      allowPositionals: true,
      options: { out: { type: "string" }, smooth: { type: "string", default: "25" } },
    }, {
      name: "plot_metrics",
      summary: "the training curve of a run (loss against step) as an SVG",
      usage: "deno run -A scripts/plot_metrics.ts <run dir>/metrics.jsonl [options]",
    })
  );
  if (positionals.length !== 1) {
    console.error("usage: deno run -A scripts/plot_metrics.ts <metrics.jsonl> [--out f.svg]");
    Deno.exit(2);
  }
  const rows = parseMetrics(await Deno.readTextFile(positionals[0]));
  const out = values.out ?? positionals[0].replace(/\.jsonl$/, "") + ".svg";
  await Deno.writeTextFile(out, lossCurveSvg(rows, Number(values.smooth)));
  console.log(`wrote ${out} (${rows.length} points, steps ${rows[0].step}…${rows.at(-1)!.step})`);
}
