import assert from "node:assert/strict";
import { lossCurveSvg, parseMetrics, smooth } from "./plot_metrics.ts";

const points = (svg: string, n: number) =>
  [...svg.matchAll(/<polyline points="([^"]+)"/g)][n][1].split(" ").map((p) =>
    p.split(",").map(Number)
  );

Deno.test("the loss curve: one point per logged step, left to right, lower loss drawn higher up", () => {
  const rows = Array.from({ length: 50 }, (_, i) => ({ step: 10 * (i + 1), loss: 1 / (i + 1) }));
  const svg = lossCurveSvg(rows, 5);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const raw = points(svg, 0), smoothed = points(svg, 1);
  assert.equal(raw.length, 50);
  assert.equal(smoothed.length, 50);
  for (let i = 1; i < 50; i++) {
    assert.ok(raw[i][0] > raw[i - 1][0], "x increases with step");
    assert.ok(raw[i][1] > raw[i - 1][1], "y (down the page) increases as the loss falls");
  }
  for (const [x, y] of raw) assert.ok(x >= 0 && x <= 640 && y >= 0 && y <= 360);
  assert.match(svg, />500</, "last step labelled");
});

Deno.test("parseMetrics reads metrics.jsonl and refuses what it cannot draw", () => {
  const text = '{"step":10,"loss":0.5,"lr":1e-4}\n{"step":20,"loss":0.25}\n\n';
  assert.deepEqual(parseMetrics(text), [{ step: 10, loss: 0.5 }, { step: 20, loss: 0.25 }]);
  assert.throws(() => parseMetrics('{"step":10,"loss":0.5}\n'), /at least two/);
  assert.throws(() => parseMetrics('{"step":10,"loss":0.5}\n{"step":20}\n'), /line 2/);
});

Deno.test("smooth is a centred moving average", () => {
  assert.deepEqual(smooth([0, 3, 6, 9], 3), [1.5, 3, 6, 7.5]);
  assert.deepEqual(smooth([4, 8], 1), [4, 8]);
});
