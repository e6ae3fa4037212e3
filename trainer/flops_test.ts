import assert from "node:assert/strict";
import { flopsReport } from "./flops.ts";
import { flopsBySide, forwardFlops } from "./network/unet.ts";
import { mnistUNet } from "./export/test_models.ts";

const shipped = mnistUNet({ channels: 16 });

Deno.test("the shipped c = 16 layout costs 69.5 MFLOP per call, 54 % of it at 28×28", () => {
  assert.equal((forwardFlops(shipped) / 1e6).toFixed(1), "69.5");
  const by = flopsBySide(shipped);
  assert.deepEqual([...by.keys()].sort((a, b) => a - b), [0, 7, 14, 28]);
  assert.equal((by.get(28)! / forwardFlops(shipped)).toFixed(2), "0.54");
});

Deno.test("lean options: conv-resize and a space-to-depth stem cut full-resolution work", () => {
  const cr = mnistUNet({ channels: 16, upsample: "conv-resize" });
  // Counted by hand: the 28×28 up-conv 32→32 (14.45 M) becomes a 14×14 conv 32→16 (1.81 M) and
  // the next block's input drops from 48 to 32 channels (c1 10.84 → 7.23 M, skip 1.20 → 0.80 M);
  // the 14×14 up-conv 32→32 (3.61 M) runs at 7×7 (0.90 M).
  const saved = forwardFlops(shipped) - forwardFlops(cr);
  assert.ok(
    Math.abs(saved - (14.45 - 1.81 + 3.61 + 0.40 + 3.61 - 0.90) * 1e6) < 0.05e6,
    `${saved}`,
  );
  const s2d = mnistUNet({ channels: 16, channelMult: [1, 2], spaceToDepth: 2 });
  assert.equal(flopsBySide(s2d).has(28), false);
  assert.ok(forwardFlops(s2d) < 0.3 * forwardFlops(shipped));
  // Per-level blocks: a second block at the lowest level costs exactly its two res blocks.
  const more = mnistUNet({ channels: 16, levelBlocks: [1, 1, 2] });
  assert.ok(forwardFlops(more) > forwardFlops(shipped));
});

Deno.test("flopsReport lists params, total and each side's share", () => {
  const lines = flopsReport(shipped);
  assert.match(lines[0], /^200,433 params, 69\.5 MFLOP per call$/);
  assert.match(lines[1], /28×28 +37\.78 MFLOP +54\.3 %/);
  assert.match(lines.at(-1)!, /embeddings/);
});
