/**
 * The model card is a published format: the default model of 2026-11-30 (a
 * `ddpm-edge/model-card@1` card written before samplers, Γ statistics and prediction types
 * existed; committed in fixtures/models/mnist-2026-11-30/) still loads and draws byte-identical
 * PNGs for the same queries. The hashes were taken with the server of commit 1036671. So does the
 * 2026-12-01 card (few-step sampler and Γ statistics, written before the data prior existed;
 * fixtures/models/mnist-2026-12-01/, the same ONNX file), and the model v2 card (the data prior,
 * written before cards carried their own chain; fixtures/models/mnist-v2-2026-12-01/), and v2
 * guidance-distilled (the default of session 6, fixtures/models/mnist-v2-guided-2026-12-01/), and
 * its null-class autoguided successor (the default of session 7, written before cards carried
 * `sampling.nullClassSteps`; fixtures/models/mnist-autoguided-2026-12-01/), and the session-8
 * default (before the default card carried its own chain, issue 26;
 * fixtures/models/mnist-2026-12-07/), and the session-6 2-call student
 * (fixtures/models/mnist-fast-2026-12-01/).
 */
import assert from "node:assert/strict";
import { createApp } from "./app.ts";
import { createEngine } from "./engine.ts";
import { loadModel, type Model, sha256Hex } from "./model.ts";

/** An app on the model that answers each query with the PNG of the given sha256. */
async function appMatchingGoldens(model: Model, goldens: Record<string, string>) {
  const engine = await createEngine(model, { backend: "wasm", threads: 1 });
  const app = createApp({ load: () => Promise.resolve(engine) });
  for (const [q, sha] of Object.entries(goldens)) {
    const r = await app.request(`/generate?${q}`);
    assert.equal(r.status, 200, q);
    assert.equal(await sha256Hex(new Uint8Array(await r.arrayBuffer())), sha, q);
  }
  return app;
}

const OLD_CARD = new URL("../fixtures/models/mnist-2026-11-30/model.json", import.meta.url);

const GOLDEN: Record<string, string> = {
  "seed=42": "a239068b6da82254949bd4db537c099df9e616d950f79c49da170751e66a494f",
  "seed=7&label=3&n=4": "aa761bb733cb15cde6891b84171d1d25bd00b536157c144d1749d004885bc867",
  "seed=1&eta=0&steps=5": "9c7290aa1f8d593b2aafa2626dc7b58afb6d44cd319d341b16800173caf97851",
  "seed=9&guidance=2&label=5&steps=4&n=2":
    "1add65bdaaca278a5ae58616c580357eeed4f50db08fc5d45bb27b6462edd6ed",
  "seed=3&n=3&spacing=linspace&eta=0.5&steps=6":
    "816267bc7176a5a560988ce20ab0dd08a02795123a1841a51fd700f5fe318a27",
  "seed=5&guidance=0&n=2": "eb2d9804767a1031e5a0457faa481af1b05ea228e349950f49e1dc0cdb1d20d8",
};

Deno.test("the 2026-11-30 card (model-card@1, no sampler) draws the same PNGs as before", async () => {
  const model = await loadModel(OLD_CARD);
  assert.equal(model.card.format, "ddpm-edge/model-card@1");
  assert.equal(model.card.sampling.sampler, undefined);
  assert.equal(model.card.sampling.analytic, undefined);
  const app = await appMatchingGoldens(model, GOLDEN);
  // The same query naming the sampler an old card defaults to gives the same bytes.
  const named = await app.request("/generate?seed=42&sampler=ddim");
  assert.equal(await sha256Hex(new Uint8Array(await named.arrayBuffer())), GOLDEN["seed=42"]);
  // It has no Γ statistics: analytic is refused, naming the parameter.
  const r = await app.request("/generate?seed=42&sampler=analytic");
  assert.equal(r.status, 400);
  const body = await r.json();
  assert.equal(body.issues[0].path, "sampler");
  assert.match(body.issues[0].message, /needs Analytic-DPM statistics/);
});

const CARD_2026_12_01 = new URL("../fixtures/models/mnist-2026-12-01/model.json", import.meta.url);

/** Taken with the server of commit 234650d, where this card was the shipped default. */
const GOLDEN_2026_12_01: Record<string, string> = {
  "seed=42": "1a417eab66d32e328872f06a5044cd790cac929f6da92460b5c09cea470d2e6f",
  "seed=7&label=3&n=4": "042bdb78d51a7a8320493558877e5be6cf624f6033757cca211523c7243f1b9e",
  "seed=1&sampler=ddim&eta=0&steps=5":
    "b51dde41893c4502ce544660b565d624f7584e0a68f94c4db8d35a28192163e5",
  "seed=9&guidance=2&label=5&steps=4&n=2":
    "221a082cdeaaca827986e2209553e68783b24103761282adbd75a19cd1cdf941",
  "seed=5&guidance=0&n=2": "a1733b8faa45bd8e5cf11ad5ba5ea4d25f065f11f4a8d5e81f6c5995a5bed57f",
  "seed=3&sampler=analytic&steps=6":
    "4915b7e2666c5ee64235cd0b8ee8107110029a46b4547ca4613530c30b37ab19",
};

Deno.test("the 2026-12-01 card (sampler and Γ, no data prior) draws the same PNGs as before", async () => {
  const model = await loadModel(CARD_2026_12_01);
  assert.equal(model.card.sampling.sampler, "dpm++2m-sde");
  assert.equal(model.card.sampling.prior, undefined);
  await appMatchingGoldens(model, GOLDEN_2026_12_01);
});

const CARD_V2 = new URL("../fixtures/models/mnist-v2-2026-12-01/model.json", import.meta.url);

/** Taken with the server of commit 374738c, where this card (model v2) was the shipped default. */
const GOLDEN_V2: Record<string, string> = {
  "seed=42": "c4d21f5670d2818256f85cabdc1b642000839579b90d555e321e2a1187d7aa7e",
  "seed=7&label=3&n=4": "4e1e4bd79cad270009fe3689ed0aeadeafb0413d39a0b0e30824fecf2466aa10",
  "seed=1&sampler=ddim&eta=0&steps=9":
    "ed469fc3667d7cd6f934f7f2d8fd03ccf4a130b630501b86c129f6b6a36153c1",
  "seed=9&guidance=2&label=5&steps=4&n=2":
    "d43a42b7ca82c65f468cf0646715abf622f2ebee42e28fec863a2ab706a7c5ef",
  "seed=5&guidance=0&n=2": "6e1c1605ae024d04e81a2ebe621ec405755147b4b72e9f5bac49980f339e283c",
  "seed=3&sampler=analytic&steps=6":
    "180c5a773d8c1f18dadbaf6d78237243a9afa4a81d1d1b3b7125b8a51fb9141a",
  "seed=11&label=8&steps=3&spacing=trailing":
    "7f53e434180d51d1a544399def87af7d6b2396a3c847ce422089fdcb0be43c97",
};

Deno.test("the model v2 card (data prior, no card chain) draws the same PNGs as before", async () => {
  const model = await loadModel(CARD_V2);
  assert.ok(model.card.sampling.prior);
  assert.equal(model.card.sampling.timesteps, undefined);
  await appMatchingGoldens(model, GOLDEN_V2);
});

const CARD_V2_GUIDED = new URL(
  "../fixtures/models/mnist-v2-guided-2026-12-01/model.json",
  import.meta.url,
);

/** Taken with the server of commit 662bfa0, where this card was the shipped default. */
const GOLDEN_V2_GUIDED: Record<string, string> = {
  "seed=42": "809bcae7d68db82f2d0e226427297af2fd372a0a51c767c490835d1b0f5894e8",
  "seed=7&label=3&n=4": "e4ace36abd60707fe0b588135c43a58eb13c60ad96d026c3f55e0f84c333b236",
  "seed=5&guidance=0&n=2": "95da5681c9d50138821fe615185470d61ccc28582ad4758eee41b704fc62530e",
  "seed=3&sampler=analytic&steps=6":
    "5e044ce3b7fbdd329942bfbc746b4d2605074609172f7fd0fda47fc261f3b725",
  "seed=9&guidance=2&label=5&steps=4&n=2":
    "b00a1d5fca9aab4151a7bb7abe7018ffd04fa0fcf923017ec76930fe160597bf",
  "seed=11&label=8&steps=3&spacing=trailing":
    "bd6351dfb6be35ab6e8a2ead59b2486945229e42008269a181014be28dc1722e",
};

Deno.test("the v2 guidance-distilled card (training.guideTeacher) draws the same PNGs as before", async () => {
  const model = await loadModel(CARD_V2_GUIDED);
  assert.equal(model.card.training.guideTeacher?.weight, 1.1);
  assert.equal(model.card.training.autoguide, undefined);
  await appMatchingGoldens(model, GOLDEN_V2_GUIDED);
});

const CARD_AUTOGUIDED = new URL(
  "../fixtures/models/mnist-autoguided-2026-12-01/model.json",
  import.meta.url,
);

/** Taken with the server of commit ad55b90, where this card was the shipped default. */
const GOLDEN_AUTOGUIDED: Record<string, string> = {
  "seed=42": "6d9aee4c9abf75aebab06cbe5dd857a6e6febe12c397a50937503849575a6f04",
  "seed=7&label=3&n=4": "2d157e29bf8dc36192bc08258163cd0fcd1e77542b17aee61e5aebc4a2b0654e",
  "seed=5&guidance=0&n=2": "2593f45489e4d323791c9df36ad95aaa20d6abb31fb6711702b84e4ad5b93bb8",
  "seed=9&guidance=2&label=5&n=2":
    "5a5cf48585ff7c45cfa8b696cbcce316e6b377b5cc8d7cf94bc6bccec6e9047f",
  "seed=3&n=3&sampler=ddim&eta=0.5&steps=6":
    "9e9e1c02a0390cb07b36770a465521316b553ba0403d2eb20715f06423d40a85",
};

Deno.test("the autoguided card (training.autoguide, no nullClassSteps) draws the same PNGs as before", async () => {
  const model = await loadModel(CARD_AUTOGUIDED);
  assert.equal(model.card.training.autoguide?.weight, 2);
  assert.equal(model.card.sampling.nullClassSteps, undefined);
  // Without the field, the null class keeps the card's 5 steps, as when it was the default.
  const app = await appMatchingGoldens(model, GOLDEN_AUTOGUIDED);
  const r = await app.request("/generate?seed=5&guidance=0&n=2&steps=5");
  assert.equal(
    await sha256Hex(new Uint8Array(await r.arrayBuffer())),
    GOLDEN_AUTOGUIDED["seed=5&guidance=0&n=2"],
  );
});

const CARD_2026_12_07 = new URL("../fixtures/models/mnist-2026-12-07/model.json", import.meta.url);

/**
 * Taken with the server of commit 0fbd052, where this card (without the classifier field added
 * later) was the shipped default: the session-8 default, dpm++2m-sde on power spacing, 12
 * null-class steps, no chain of its own (issue 26 gave the default one).
 */
const GOLDEN_2026_12_07: Record<string, string> = {
  "seed=42": "4a202fd489866ce8c0e271a4ce40739623ac415708dc64472a062505cf76454a",
  "seed=7&label=3&n=4": "b6af5d11efa81801367d2685e1ff58f98cfe6c800ed401dba15a0a364bad782b",
  "seed=5&guidance=0&n=2": "eee378ca1003bfc825e0f2407c815296a15f06b9e39dff77c8a659a928632a6c",
  "seed=1&sampler=ddim&eta=0&steps=5":
    "54648dc48f834eab0ad11d4e0cd190db7dd6d8cf3ffdc646c4e59393387fd878",
  "seed=3&steps=8&n=2": "a7f0b702230618bf2d8a3e9558a1df6d1787c5056216ee3980f0561506cc10d7",
};

Deno.test("the session-8 default card (nullClassSteps, no chain of its own) draws the same PNGs as before", async () => {
  const model = await loadModel(CARD_2026_12_07);
  assert.equal(model.card.sampling.sampler, "dpm++2m-sde");
  assert.equal(model.card.sampling.nullClassSteps, 12);
  assert.equal(model.card.sampling.timesteps, undefined);
  await appMatchingGoldens(model, GOLDEN_2026_12_07);
});

Deno.test("the issue-26 default draws its null class as the session-8 card did (sampling.nullClassSampler)", async () => {
  const model = await loadModel(new URL("../fixtures/models/mnist/model.json", import.meta.url));
  assert.equal(model.card.sampling.sampler, "dpm++2m");
  assert.equal(model.card.sampling.nullClassSampler, "dpm++2m-sde");
  const q = "seed=5&guidance=0&n=2";
  await appMatchingGoldens(model, { [q]: GOLDEN_2026_12_07[q] });
});

/**
 * The session-6 `mnist-fast` (a distilled student: its own chain [646, 934, 999], the prior step,
 * `training.distillation`), replaced in session 10 and kept in fixtures/models/mnist-fast-2026-12-01/
 * with its ONNX unchanged; hashes taken at commit 77226a0's sampling code, when it was shipped.
 */
const GOLDEN_FAST_2026_12_01: Record<string, string> = {
  "seed=42": "e76e5c954fee66ffb9cbcb16025b89fc24e16523537d56a4d40326576d119243",
  "seed=7&label=3&n=4": "edcef43ce92ed71c90ac5e2b588c4eb83d84d8aaf822a4140ce8e64fec23c251",
  "seed=5&guidance=0&n=2": "4c9d08c7ff6922321db1cfa00b5bce4011ac44febf0ac03c48b0db89670847b0",
  "seed=1&sampler=dpm%2B%2B2m&steps=4":
    "9f558044e0b8c7b804f6fc41dec4ad6555de8691b7957039461d3154524f92d2",
};

Deno.test("the session-6 mnist-fast card (a student's own chain) draws the same PNGs as before", async () => {
  const model = await loadModel(
    new URL("../fixtures/models/mnist-fast-2026-12-01/model.json", import.meta.url),
  );
  assert.deepEqual(model.card.sampling.timesteps, [646, 934, 999]);
  assert.equal(model.card.training?.distillation?.teacherGuidance, 1.1);
  await appMatchingGoldens(model, GOLDEN_FAST_2026_12_01);
});
