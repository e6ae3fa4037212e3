import assert from "node:assert/strict";
import { Queue, QueueFullError } from "./queue.ts";

/** A job that finishes when release() is called. */
function gate() {
  let release!: () => void;
  const done = new Promise<void>((r) => release = r);
  return { release, job: () => done.then(() => "done") };
}

Deno.test("runs at most maxInFlight jobs, queues maxWaiting, refuses the rest", async () => {
  const q = new Queue({ maxInFlight: 1, maxWaiting: 1 });
  const a = gate(), b = gate();
  const pa = q.run(a.job);
  const pb = q.run(b.job);
  assert.equal(q.inFlight, 1);
  assert.equal(q.waiting, 1);
  const err = await q.run(() => Promise.resolve("c")).catch((e) => e);
  assert.ok(err instanceof QueueFullError);
  assert.ok(err.retryAfterSeconds >= 1);
  a.release();
  assert.equal(await pa, "done");
  assert.equal(q.inFlight, 1, "b took a's slot");
  assert.equal(q.waiting, 0);
  b.release();
  assert.equal(await pb, "done");
  assert.equal(q.inFlight, 0);
});

Deno.test("a failing job frees its slot", async () => {
  const q = new Queue({ maxInFlight: 1, maxWaiting: 0 });
  await assert.rejects(q.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(q.inFlight, 0);
  assert.equal(await q.run(() => Promise.resolve(1)), 1);
});

Deno.test("an aborted waiter leaves the line and never runs", async () => {
  const q = new Queue({ maxInFlight: 1, maxWaiting: 2 });
  const a = gate();
  const pa = q.run(a.job);
  const ctl = new AbortController();
  let ran = false;
  const pb = q.run(() => Promise.resolve(ran = true), ctl.signal);
  assert.equal(q.waiting, 1);
  ctl.abort(new Error("client gone"));
  await assert.rejects(pb, /client gone/);
  assert.equal(q.waiting, 0);
  a.release();
  await pa;
  assert.equal(ran, false);
  assert.equal(q.inFlight, 0);
  // An already-aborted signal is refused before queueing.
  await assert.rejects(q.run(() => Promise.resolve(1), ctl.signal), /client gone/);
});
