import assert from "node:assert/strict";
import { oneOf } from "./choice.ts";

Deno.test("oneOf returns a listed value and names the flag, the choices and the value otherwise", () => {
  assert.equal(oneOf(["a", "b"] as const, "b", "--x"), "b");
  assert.throws(() => oneOf(["a", "b"], "c", "--x"), /^Error: --x must be one of a, b, got "c"$/);
  assert.throws(() => oneOf(["a", "b"], "", "--x"), /got ""/);
});
