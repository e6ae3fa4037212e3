/**
 * eval:classifier-guidance on the shipped model and its classifier, through the edge sampler:
 * one row per scale and per labelled entry, the real held-out row at the same n, per-digit accuracy
 * lines, and one-line refusals.
 */
import assert from "node:assert/strict";
import { DEFAULT_MODEL_CARD, loadModel } from "../edge/model.ts";
import { CliExit } from "./cli_args.ts";
import { main } from "./eval_classifier_guidance.ts";

const { card } = await loadModel(DEFAULT_MODEL_CARD);

Deno.test("eval:classifier-guidance prints a row per scale and labelled entry, and per-digit accuracy", async () => {
  const lines = await main([
    ...["--model", DEFAULT_MODEL_CARD.pathname, "--scales", "0,4", "--n", "20"],
    ...["--labelled", "5,6:2", "--batch", "10"],
  ]);
  const rows = lines.filter((l) => l.startsWith("| null class") || l.startsWith("| labelled"));
  assert.equal(rows.length, 4);
  // The chains a request gets: the null class's (12 steps, 11 calls after the prior step); with a
  // scale, the card's classifier.steps on its classifier.sampler (25 on DDPM).
  assert.match(rows[0], /^\| null class, unguided: [^|]*, power \| 12 \| 11 \| – \| 0 \| 20 \|/);
  assert.equal(card.classifier!.steps, 25);
  assert.match(
    rows[1],
    /^\| null class, classifier_scale 4: DDPM, power \| 25 \| 24 \| – \| 0 \| 20 \|/,
  );
  assert.match(rows[2], /^\| labelled, guidance 1: [^|]* \| 5 \| 4 \| – \| 1 \| 20 \|/);
  assert.match(rows[3], /^\| labelled, guidance 2: [^|]* \| 6 \| 5 \| – \| 2 \| 20 \|/);
  // The real floor at the same n: 20 held-out digits, two per class.
  const real = lines.filter((l) => l.startsWith("| real held-out digits"));
  assert.equal(real.length, 1);
  assert.match(real[0], /^\| real held-out digits \| – \| – \| – \| – \| 20 \|/);
  const spread = lines.filter((l) => /per-digit accuracy/.test(l));
  assert.equal(spread.length, 4);
  assert.match(spread[0], /^null class, unguided: per-digit accuracy( \d\.\d\d){10} \(lowest /);
});

Deno.test("eval:classifier-guidance refuses bad scales and a card without a classifier", async () => {
  const fast = new URL("../fixtures/models/mnist-fast/model.json", import.meta.url).pathname;
  await assert.rejects(
    main(["--model", fast]),
    (e) => e instanceof CliExit && /no classifier/.test(e.text),
  );
  await assert.rejects(
    main(["--scales", "1,-2"]),
    (e) => e instanceof CliExit && /--scales must be numbers ≥ 0/.test(e.text),
  );
  await assert.rejects(
    main(["--high-noise", "850"]),
    (e) => e instanceof CliExit && /--high-noise: expected ABOVE:FACTOR/.test(e.text),
  );
});

Deno.test("eval:classifier-guidance --high-noise overrides the card's weaker scale at high noise", async () => {
  const h = card.classifier!.highNoise!;
  const header = async (extra: string[]) =>
    (await main(["--scales", "", "--labelled", "", "--n", "10", ...extra]))[0];
  assert.match(
    await header([]),
    new RegExp(
      `recommended scale ${card.classifier!.scale}; S × ${h.factor} above t = ${h.above}\\)`,
    ),
  );
  assert.match(await header(["--high-noise", "none"]), /; S at every step\)$/);
  assert.match(await header(["--high-noise", "700:0.5"]), /; S × 0\.5 above t = 700\)$/);
});
