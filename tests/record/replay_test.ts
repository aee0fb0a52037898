import assert from "node:assert/strict";
import { ReplayWindow } from "../../src/record/replay.ts";
import { seededRandom } from "../crypto/hex.ts";

Deno.test("replay: a new window takes anything, starting with 0", () => {
  const w = new ReplayWindow();
  assert.ok(w.isFresh(0));
  assert.ok(w.isFresh(1000));
  assert.ok(w.isFresh(2 ** 48 - 1));
});

Deno.test("replay: duplicates are refused; isFresh alone does not move the window", () => {
  const w = new ReplayWindow();
  assert.ok(w.isFresh(5));
  assert.ok(w.isFresh(5)); // not yet accepted (e.g. it failed to authenticate)
  w.accept(5);
  assert.equal(w.isFresh(5), false);
  assert.ok(w.isFresh(4));
  assert.ok(w.isFresh(6));
});

Deno.test("replay: reordering inside the window is fine, the window edge is 64 (RFC 4303 §3.4.3)", () => {
  const w = new ReplayWindow();
  w.accept(100);
  assert.ok(w.isFresh(37)); // 100 - 63: the oldest slot in the window
  assert.equal(w.isFresh(36), false); // 64 below the top: too old
  w.accept(37);
  assert.equal(w.isFresh(37), false);
  for (let s = 38; s < 100; s++) assert.ok(w.isFresh(s), `seq ${s}`);
  w.accept(70);
  assert.equal(w.isFresh(70), false);
  // Sliding by one drops 37 out of the window and keeps the marks of 70 and 100.
  w.accept(101);
  assert.equal(w.isFresh(37), false);
  assert.ok(w.isFresh(38));
  assert.equal(w.isFresh(70), false);
  assert.equal(w.isFresh(100), false);
});

Deno.test("replay: jumps of 31, 32, 33, 63, 64 and more keep exactly the marks still in range", () => {
  for (const jump of [1, 31, 32, 33, 63, 64, 65, 1000, 2 ** 40]) {
    const w = new ReplayWindow();
    for (let s = 0; s < 64; s++) if (s % 3 === 0) w.accept(s);
    const top = 63 + jump;
    w.accept(top);
    for (let s = Math.max(0, top - 70); s <= top; s++) {
      const inWindow = top - s < 64;
      const seen = s === top || (s < 64 && s % 3 === 0);
      assert.equal(w.isFresh(s), inWindow && !seen, `jump ${jump}, seq ${s}`);
    }
  }
});

Deno.test("replay: accepting an old or duplicate number changes nothing", () => {
  const w = new ReplayWindow();
  w.accept(200);
  w.accept(10); // far outside the window
  w.accept(200);
  assert.ok(w.isFresh(199));
  assert.ok(w.isFresh(137));
  assert.equal(w.isFresh(200), false);
});

Deno.test("replay: numbers that are not uint48 are never fresh and never accepted", () => {
  const w = new ReplayWindow();
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 48]) {
    assert.equal(w.isFresh(bad), false, String(bad));
    w.accept(bad);
  }
  assert.ok(w.isFresh(0));
  w.accept(2 ** 48 - 1);
  assert.equal(w.isFresh(2 ** 48 - 1), false);
  assert.ok(w.isFresh(2 ** 48 - 64));
  assert.equal(w.isFresh(2 ** 48 - 65), false);
});

Deno.test("replay: matches a set-based model on random traffic", () => {
  const random = seededRandom(99);
  for (let run = 0; run < 20; run++) {
    const w = new ReplayWindow();
    const seen = new Set<number>();
    let top = -1;
    let base = run * 2 ** 40;
    for (let i = 0; i < 2000; i++) {
      const r = random(2);
      // Mostly forward with jitter, sometimes far back or far ahead.
      let seq = base + (r[0]! % 80) - 40;
      if (r[1]! < 8) seq = base + 500;
      if (seq < 0) seq = 0;
      base += r[1]! % 3;
      const expected = !seen.has(seq) && seq > top - 64;
      assert.equal(w.isFresh(seq), expected, `run ${run} step ${i} seq ${seq} top ${top}`);
      if (expected && (r[0]! & 1) === 0) {
        w.accept(seq);
        seen.add(seq);
        if (seq > top) top = seq;
      }
    }
  }
});
