import assert from "node:assert/strict";
import { nextTask, slicedYield } from "./yield.ts";

const busy = (ms: number) => {
  const s = performance.now();
  while (performance.now() - s < ms) { /* work */ }
};

Deno.test("slicedYield: a pending request is answered while a long computation yields", async () => {
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    () => new Response("ok"),
  );
  try {
    const y = slicedYield(10);
    const t0 = performance.now();
    let answeredAt = -1;
    const req = fetch(`http://127.0.0.1:${server.addr.port}/`).then(async (r) => {
      await r.text();
      answeredAt = performance.now() - t0;
    });
    // 60 steps of 4 ms, as a sampling loop would run them.
    for (let i = 0; i < 60; i++) {
      busy(4);
      await y();
    }
    const loopMs = performance.now() - t0;
    await req;
    assert.ok(answeredAt >= 0 && answeredAt < loopMs, `answered at ${answeredAt} of ${loopMs} ms`);
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("slicedYield: steps shorter than the slice share one timer turn", async () => {
  let turns = 0;
  const timer = setInterval(() => turns++, 0);
  try {
    const y = slicedYield(1e9);
    for (let i = 0; i < 50; i++) await y();
    assert.equal(turns, 0, "no timer ran: nothing yielded to the event loop");
    const z = slicedYield(0);
    for (let i = 0; i < 5; i++) await z();
    assert.ok(turns >= 1, `a zero slice yields every call (timer ran ${turns}×)`);
  } finally {
    clearInterval(timer);
  }
  await nextTask();
});
