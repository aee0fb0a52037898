import assert from "node:assert/strict";
import { OutputQueue } from "../../src/connection/output_queue.ts";

Deno.test("output queue: first in, first out, across pushes made while draining", () => {
  const queue = new OutputQueue<number>();
  assert.equal(queue.poll(), undefined);
  queue.push(1);
  queue.push(2);
  assert.equal(queue.poll(), 1);
  queue.push(3);
  assert.equal(queue.poll(), 2);
  assert.equal(queue.poll(), 3);
  assert.equal(queue.poll(), undefined);
  // Reused after being drained to empty.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 100; i++) queue.push(i);
    for (let i = 0; i < 100; i++) assert.equal(queue.poll(), i);
    assert.equal(queue.poll(), undefined);
  }
});
