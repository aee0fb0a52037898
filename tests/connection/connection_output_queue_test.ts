import assert from "node:assert/strict";
import fc from "fast-check";
import { OutputQueue } from "../../src/connection/connection.ts";

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

Deno.test("output queue: property: any interleaving of pushes and polls is first in, first out", () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (ops) => {
      const queue = new OutputQueue<number>();
      const model: number[] = [];
      let next = 0;
      for (const isPush of ops) {
        if (isPush) {
          queue.push(next);
          model.push(next++);
        } else {
          assert.equal(queue.poll(), model.shift());
        }
      }
      while (model.length > 0) assert.equal(queue.poll(), model.shift());
      assert.equal(queue.poll(), undefined);
    }),
    { numRuns: 500 },
  );
});
