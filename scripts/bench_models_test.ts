/** bench:models on two real tiny models: it serves both, alternates and reports each. */
import assert from "node:assert/strict";
import { benchModels, markdown } from "./bench_models.ts";
import { writeTinyModel } from "../edge/testing.ts";

Deno.test("bench:models serves each model at its defaults and reports CPU per request", async () => {
  const a = await writeTinyModel({ T: 50, steps: 4 });
  const b = await writeTinyModel({ T: 50, steps: 2, sampler: "dpm++2m" });
  const rs = await benchModels({ models: [a, b], warmup: 2, requests: 3, rounds: 2, query: "" });
  assert.equal(rs.length, 2);
  assert.deepEqual(rs.map((r) => [r.card.sampler, r.card.steps]), [["ddim", 4], ["dpm++2m", 2]]);
  for (const r of rs) {
    assert.equal(r.cpuMs.length, 2);
    assert.ok(r.cpuMs.every((v) => Number.isFinite(v) && v >= 0));
    assert.ok(r.wallMs.every((v) => v > 0));
  }
  const md = markdown("test machine", rs, { requests: 3, rounds: 2, warmup: 2 });
  assert.match(md, /\| dpm\+\+2m, 2 steps, linspace \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
});

Deno.test("bench:models: a model entry's own query (after #) goes with every request", async () => {
  const a = await writeTinyModel({ T: 50, steps: 4 });
  const rs = await benchModels({
    models: [`${a}#n=2`],
    warmup: 1,
    requests: 1,
    rounds: 1,
    query: "steps=2",
  });
  assert.equal(rs[0].model, `${a}#n=2`);
  await assert.rejects(
    benchModels({ models: [`${a}#bogus=1`], warmup: 1, requests: 1, rounds: 1, query: "" }),
    /status 400: .*bogus/,
  );
});
