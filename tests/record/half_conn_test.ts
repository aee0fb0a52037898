import assert from "node:assert/strict";
import {
  ReadHalf,
  ReplayWindow,
  SequenceExhausted,
  WriteHalf,
} from "../../src/record/half_conn.ts";
import {
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  encodeRecord,
  parseRecords,
} from "../../src/record/header.ts";
import type { RecordProtection } from "../../src/record/protection.ts";
import { MemoryAccount } from "../../src/memory/budget.ts";
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

// ---- the two halves -------------------------------------------------------------

/** A protection that seals by appending the epoch and checks that on open: enough to tell epochs apart. */
function taggedProtection(tag: number): RecordProtection {
  return {
    overhead: 1,
    protect: (_t, _v, _e, _s, plaintext) => new Uint8Array([...plaintext, tag]),
    protectRecord: (type, version, epoch, seq, plaintext) =>
      encodeRecord(type, version, epoch, seq, new Uint8Array([...plaintext, tag])),
    unprotect: (_t, _v, _e, _s, fragment) =>
      fragment.at(-1) === tag ? fragment.subarray(0, fragment.length - 1) : null,
  };
}

function record(epoch: number, seq: number, fragment: Uint8Array, version = DTLS_1_2) {
  return parseRecords(encodeRecord(ContentType.ApplicationData, version, epoch, seq, fragment))
    .records[0]!;
}

Deno.test("write half: each record takes the next sequence number of its epoch, and none past 2^48-2", () => {
  const write = new WriteHalf(2 ** 48 - 3);
  const seqs = [0, 1].map(() =>
    parseRecords(write.seal(ContentType.Handshake, new Uint8Array([1]))).records[0]!.seq
  );
  assert.deepEqual(seqs, [2 ** 48 - 3, 2 ** 48 - 2]);
  assert.throws(() => write.seal(ContentType.Handshake, new Uint8Array([1])), SequenceExhausted);
  // Epoch 1 has numbers of its own, from 0, once our ChangeCipherSpec went out.
  write.install(1, taggedProtection(7));
  assert.equal(write.epoch, 0);
  write.changeCipherSpec(0);
  assert.equal(write.epoch, 1);
  assert.equal(write.overhead(), 1);
  const sealed = parseRecords(write.seal(ContentType.ApplicationData, new Uint8Array([9])))
    .records[0]!;
  assert.deepEqual([sealed.epoch, sealed.seq, [...sealed.fragment]], [1, 0, [9, 7]]);
});

Deno.test("read half: early epoch-1 records are held (four, charged), then given back uncharged by the ChangeCipherSpec", () => {
  const memory = new MemoryAccount(undefined, "", 1_000_000);
  const read = new ReadHalf(memory);
  for (let seq = 0; seq < 5; seq++) {
    assert.equal(
      read.open(record(1, seq, new Uint8Array([seq, 7]))),
      seq < 4 ? "held" : "buffer_full",
    );
  }
  assert.ok(memory.used > 0);
  assert.equal(
    read.open(record(2, 0, new Uint8Array([7]))),
    "buffer_full",
    "only epoch 1 comes early",
  );
  assert.throws(() => read.activatePending(), /no pending read keys/);
  read.setPending(taggedProtection(7));
  const early = read.activatePending();
  assert.equal(memory.used, 0);
  assert.deepEqual(early.map((r) => r.seq), [0, 1, 2, 3]);
  assert.equal(read.epoch, 1);
  assert.deepEqual([...(read.open(early[0]!) as Uint8Array)], [0]);
  assert.equal(read.open(early[0]!), "replay", "the window moved once it authenticated");
  assert.equal(read.open(record(1, 9, new Uint8Array([1, 8]))), "bad_mac");
  assert.deepEqual(
    [...(read.open(record(1, 9, new Uint8Array([1, 7]))) as Uint8Array)],
    [1],
    "a forgery does not move the window",
  );
  assert.equal(
    read.open(record(1, 10, new Uint8Array([7]), DTLS_1_0)),
    "version",
    "DTLS 1.0 only in epoch 0",
  );
});

Deno.test("read half: once settled, nothing more is held and what was held is let go", () => {
  const memory = new MemoryAccount(undefined, "", 1_000_000);
  const read = new ReadHalf(memory);
  assert.equal(read.open(record(1, 0, new Uint8Array([7]))), "held");
  read.settle();
  assert.equal(memory.used, 0);
  assert.equal(read.open(record(1, 1, new Uint8Array([7]))), "buffer_full");
  assert.equal(memory.used, 0);
});

Deno.test("read half: an epoch-0 handshake record numbered as one opened before, or at or below the ClientHello's, is a copy", () => {
  const read = new ReadHalf(new MemoryAccount(undefined, "", 1_000));
  read.markUsed(5);
  const hs = (seq: number) =>
    parseRecords(encodeRecord(ContentType.Handshake, DTLS_1_2, 0, seq, new Uint8Array([1])))
      .records[0]!;
  read.open(hs(5));
  assert.equal(read.isCopy, true);
  read.open(hs(6));
  assert.equal(read.isCopy, false);
  read.open(hs(6));
  assert.equal(read.isCopy, true);
});

Deno.test("read half: held handshake records are peeked at with the pending keys once each, and still read after", () => {
  const read = new ReadHalf(new MemoryAccount(undefined, "", 1_000_000));
  const hs = (seq: number, body: number[]) =>
    parseRecords(
      encodeRecord(ContentType.Handshake, DTLS_1_2, 1, seq, new Uint8Array([...body, 7])),
    )
      .records[0]!;
  assert.equal(read.open(hs(0, [1])), "held");
  assert.deepEqual(read.peekHeldHandshakes(), [], "no pending keys: nothing to open with");
  read.setPending(taggedProtection(7));
  assert.deepEqual(read.peekHeldHandshakes().map((p) => [...p]), [[1]]);
  assert.deepEqual(read.peekHeldHandshakes(), [], "peeked once");
  assert.equal(read.open(hs(1, [2])), "held");
  assert.deepEqual(read.peekHeldHandshakes().map((p) => [...p]), [[2]]);
  // Peeking read nothing: both are given back, and open, as before.
  const early = read.activatePending();
  assert.deepEqual(early.map((r) => [...(read.open(r) as Uint8Array)]), [[1], [2]]);
});
