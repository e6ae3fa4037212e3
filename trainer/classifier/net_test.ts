import assert from "node:assert/strict";
import {
  type ClassifierConfig,
  classifierConfigProblems,
  classifierFlops,
  classifierParamCount,
  classifierParamSpecs,
} from "./net.ts";

const CFG: ClassifierConfig = {
  imageSize: 28,
  inChannels: 1,
  channels: 8,
  channelMult: [1, 2, 4],
  numResBlocks: 1,
  groups: 4,
  numClasses: 10,
};

Deno.test("classifierParamSpecs: the UNet's down half (res blocks, stride-2 convs, time MLP), no attention, a linear head", () => {
  const names = classifierParamSpecs(CFG).map((s) => s.name);
  assert.deepEqual(names.slice(0, 4), ["temb.1.w", "temb.1.b", "temb.2.w", "temb.2.b"]);
  for (
    const n of ["in.w", "down0.res0.c1.w", "down0.down.w", "down1.res0.skip.w", "down2.res0.c2.w"]
  ) {
    assert.ok(names.includes(n), n);
  }
  assert.ok(!names.includes("down2.down.w"), "no downsampling after the last level");
  assert.ok(!names.some((n) => /attn|up\d|label/.test(n)));
  const head = classifierParamSpecs(CFG).find((s) => s.name === "head.w")!;
  assert.deepEqual(head.shape, [32, 10]);
  assert.equal(head.init, "zero");
  assert.equal(classifierParamSpecs(CFG).find((s) => s.name === "down1.res0.c2.w")!.init, "zero");
  assert.equal(classifierParamCount(CFG), 25978);
});

Deno.test("classifierFlops: convs at 28, 14 and 7 plus the dense layers", () => {
  // in conv 1→8 at 28², level 0 block 8→8 (two 3×3), down 8→8 to 14², level 1 block 8→16 + 1×1
  // skip, down 16→16 to 7², level 2 block 16→32 + skip, time MLP 8→32→32, head 32→10.
  const conv = (side: number, k: number, cin: number, cout: number) =>
    2 * side * side * k * k * cin * cout;
  const want = conv(28, 3, 1, 8) + 2 * conv(28, 3, 8, 8) + conv(14, 3, 8, 8) +
    conv(14, 3, 8, 16) + conv(14, 3, 16, 16) + conv(14, 1, 8, 16) + conv(7, 3, 16, 16) +
    conv(7, 3, 16, 32) + conv(7, 3, 32, 32) + conv(7, 1, 16, 32) +
    2 * (8 * 32 + 32 * 32 + 32 * 8 + 32 * 16 + 32 * 32) + 2 * 32 * 10;
  assert.equal(classifierFlops(CFG), want);
});

Deno.test("classifierConfigProblems: widths must split into the groups", () => {
  assert.deepEqual(classifierConfigProblems(CFG), []);
  assert.match(classifierConfigProblems({ ...CFG, groups: 3 })[0], /divisible by groups 3/);
});
