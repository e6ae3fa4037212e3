import assert from "node:assert/strict";
import { createProgress, etaSeconds, formatDuration, formatLine, Throughput } from "./progress.ts";

Deno.test("formatDuration", () => {
  assert.equal(formatDuration(12.4), "12s");
  assert.equal(formatDuration(187), "3m07s");
  assert.equal(formatDuration(3720), "1h02m");
  assert.equal(formatDuration(NaN), "?");
});

Deno.test("ETA and plain lines", () => {
  assert.equal(etaSeconds(100, 64, 32), 200);
  assert.equal(
    formatLine({ step: 10, loss: 0.12345, imgPerS: 32, lr: 2e-4 }, 110, 64),
    "step 10/110  loss 0.1235  lr 2.00e-4  32.0 img/s  ETA 3m20s",
  );
});

Deno.test("without a TTY: one line every logEvery steps and at the end, messages pass through", () => {
  const lines: string[] = [];
  const p = createProgress({
    total: 25,
    start: 0,
    batch: 8,
    logEvery: 10,
    tty: false,
    write: (l) => lines.push(l),
  });
  for (let s = 1; s <= 25; s++) p.update({ step: s, loss: 1 / s, imgPerS: 10, lr: 1e-3 });
  p.log("hello");
  p.stop();
  assert.deepEqual(lines.map((l) => l.split("  ")[0]), [
    "step 10/25",
    "step 20/25",
    "step 25/25",
    "hello",
  ]);
});

Deno.test("Throughput: bias-corrected moving average", () => {
  const t = new Throughput(0.5);
  assert.equal(t.add(64, 2), 32);
  assert.ok(Math.abs(t.add(64, 1) - (0.25 * 32 + 0.5 * 64) / 0.75) < 1e-9);
});
