import assert from "node:assert/strict";
import { join } from "node:path";
import { ModelCardSchema } from "../../shared/model_card.ts";
import { CardEditError, installClassifier, withClassifier } from "./card.ts";

const SHIPPED = new URL("../../fixtures/models/mnist/model.json", import.meta.url).pathname;
const LABELS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const FIELD = {
  file: "classifier.onnx",
  sha256: "a".repeat(64),
  labels: LABELS,
  scale: 1,
  training: { steps: 3 },
};

/** The shipped card without a classifier field (whether or not one is installed). */
async function bareCard(): Promise<string> {
  const card = JSON.parse(await Deno.readTextFile(SHIPPED));
  delete card.classifier;
  return JSON.stringify(card, null, 2) + "\n";
}

Deno.test("withClassifier: every other field byte-identical, the field last, valid for the card schema", async () => {
  const before = await bareCard();
  const after = withClassifier(before, FIELD);
  const cut = before.lastIndexOf("\n}\n");
  assert.equal(after.slice(0, cut), before.slice(0, cut));
  const card = JSON.parse(after);
  assert.deepEqual(Object.keys(card).at(-1), "classifier");
  assert.deepEqual(card.classifier, FIELD);
  assert.deepEqual(ModelCardSchema.parse(card).classifier, FIELD);
  // Replacing keeps its place and changes nothing else.
  const again = withClassifier(after, { ...FIELD, scale: 2.5 });
  assert.equal(again, after.replace(`"scale": 1,`, `"scale": 2.5,`));
});

Deno.test("withClassifier: refuses what it cannot edit without touching other fields", async () => {
  const before = await bareCard();
  assert.throws(() => withClassifier("{", FIELD), CardEditError);
  assert.throws(() => withClassifier(JSON.stringify(JSON.parse(before)), FIELD), /laid out/);
  assert.throws(
    () => withClassifier(`{\n  "format": "x"\n}\n`, FIELD),
    /not a ddpm-edge model card/,
  );
  assert.throws(
    () => withClassifier(before, { ...FIELD, labels: LABELS.slice().reverse() }),
    /labels .* differ from the card's/,
  );
});

Deno.test("installClassifier: writes the file beside the card and its sha256 into the field", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cls-card-" });
  try {
    const card = join(dir, "model.json");
    await Deno.writeTextFile(card, await bareCard());
    const bytes = new TextEncoder().encode("not really onnx");
    const f = await installClassifier(card, bytes, {
      file: "classifier.onnx",
      labels: LABELS,
      scale: 1,
      training: {},
    });
    assert.deepEqual(await Deno.readFile(join(dir, "classifier.onnx")), bytes);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    assert.equal(f.sha256, Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""));
    assert.deepEqual(JSON.parse(await Deno.readTextFile(card)).classifier, f);
    await assert.rejects(
      installClassifier(card, bytes, { file: "../x.onnx", labels: LABELS, scale: 1, training: {} }),
      /plain file name/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
