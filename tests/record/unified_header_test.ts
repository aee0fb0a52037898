/**
 * The DTLS 1.3 unified header (RFC 9147 §4): written and read back with
 * every combination of its flags, every cut refused, and the full sequence
 * number and epoch rebuilt from their low bits (§4.2.2).
 */
import assert from "node:assert/strict";
import {
  encodeUnifiedHeader,
  isUnifiedHeader,
  parseUnifiedRecord,
  reconstructEpoch,
  reconstructSequenceNumber,
} from "../../src/record/unified_header.ts";
import { concat, hex, toHex } from "../crypto/hex.ts";

const BODY = hex("00112233445566778899aabbccddeeff0102");
const CID = hex("c0ffee");

Deno.test("unified header: the first byte's bits, byte for byte (RFC 9147 §4)", () => {
  // 001 C=1 S=1 L=1 EE=3, CID, 16-bit seq 0x1234, length 0x0012.
  assert.equal(
    toHex(encodeUnifiedHeader({ epoch: 3, seq: 0x991234, seqLength: 2, cid: CID, length: 18 })),
    "3f" + "c0ffee" + "1234" + "0012",
  );
  // 001 C=0 S=0 L=0 EE=2: epoch 6's low bits, seq's low 8 bits.
  assert.equal(toHex(encodeUnifiedHeader({ epoch: 6, seq: 0x1ab, seqLength: 1 })), "22" + "ab");
  assert.ok(isUnifiedHeader(0x2f) && isUnifiedHeader(0x3f));
  for (const b of [0x16, 0x17, 0x19, 0x40, 0x00, 0xff]) assert.ok(!isUnifiedHeader(b), `${b}`);
});

Deno.test("unified header: every combination of flags reads back", () => {
  for (const cid of [new Uint8Array(0), CID]) {
    for (const seqLength of [1, 2] as const) {
      for (const withLength of [false, true]) {
        const header = encodeUnifiedHeader({
          epoch: 2,
          seq: 0x0a0b,
          seqLength,
          cid,
          ...(withLength ? { length: BODY.length } : {}),
        });
        const datagram = concat(header, BODY);
        const parsed = parseUnifiedRecord(datagram, 0, CID.length);
        assert.ok(parsed, `cid ${cid.length} seq ${seqLength} length ${withLength}`);
        assert.equal(parsed.end, datagram.length);
        assert.equal(parsed.record.epochBits, 2);
        assert.deepEqual(parsed.record.cid, cid);
        assert.equal(parsed.record.seqLength, seqLength);
        assert.equal(
          toHex(
            parsed.record.header.subarray(
              parsed.record.seqOffset,
              parsed.record.seqOffset + seqLength,
            ),
          ),
          seqLength === 2 ? "0a0b" : "0b",
        );
        assert.deepEqual(parsed.record.header, header);
        assert.deepEqual(parsed.record.encrypted, BODY);
      }
    }
  }
});

Deno.test("unified header: records with lengths follow one another; one without runs to the end", () => {
  const first = concat(
    encodeUnifiedHeader({ epoch: 3, seq: 1, seqLength: 2, length: 4 }),
    hex("01020304"),
  );
  const second = concat(encodeUnifiedHeader({ epoch: 3, seq: 2, seqLength: 1 }), hex("0506"));
  const datagram = concat(first, second);
  const a = parseUnifiedRecord(datagram, 0, 0)!;
  assert.equal(toHex(a.record.encrypted), "01020304");
  const b = parseUnifiedRecord(datagram, a.end, 0)!;
  assert.equal(toHex(b.record.encrypted), "0506");
  assert.equal(b.end, datagram.length);
  assert.equal(parseUnifiedRecord(datagram, b.end, 0), undefined);
});

Deno.test("unified header: every cut of a header, a length past the end, and an unagreed CID are refused", () => {
  const header = encodeUnifiedHeader({
    epoch: 1,
    seq: 7,
    seqLength: 2,
    cid: CID,
    length: BODY.length,
  });
  const datagram = concat(header, BODY);
  for (let n = 0; n < datagram.length; n++) {
    assert.equal(
      parseUnifiedRecord(datagram.subarray(0, n), 0, CID.length),
      undefined,
      `cut at ${n}`,
    );
  }
  // The same header with no CID agreed: its C bit cannot be read.
  assert.equal(parseUnifiedRecord(datagram, 0, 0), undefined);
  // A CID of another length agreed: the length field lands elsewhere and runs past the end.
  assert.equal(parseUnifiedRecord(datagram, 0, 8), undefined);
  // Not a unified header at all.
  assert.equal(parseUnifiedRecord(hex("17fefd"), 0, 0), undefined);
});

Deno.test("unified header: bad fields to write are programming errors", () => {
  assert.throws(() => encodeUnifiedHeader({ epoch: -1, seq: 0, seqLength: 1 }), RangeError);
  assert.throws(() => encodeUnifiedHeader({ epoch: 0, seq: 2 ** 48, seqLength: 1 }), RangeError);
  assert.throws(
    () => encodeUnifiedHeader({ epoch: 0, seq: 0, seqLength: 1, length: 0x10000 }),
    RangeError,
  );
  assert.throws(
    () => encodeUnifiedHeader({ epoch: 0, seq: 0, seqLength: 1, cid: new Uint8Array(256) }),
    RangeError,
  );
});

Deno.test("unified header: the full sequence number is the closest one with those low bits (§4.2.2)", () => {
  // Just past a wrap of the low byte: 0x00 after 0x1ff expected is 0x200.
  assert.equal(reconstructSequenceNumber(0x00, 8, 0x1ff), 0x200);
  // A late record from before the wrap.
  assert.equal(reconstructSequenceNumber(0xff, 8, 0x201), 0x1ff);
  // Near zero: never negative.
  assert.equal(reconstructSequenceNumber(250, 8, 5), 250);
  assert.equal(reconstructSequenceNumber(3, 8, 5), 3);
  // 16 bits, across a wrap.
  assert.equal(reconstructSequenceNumber(0x0001, 16, 0x2fffe), 0x30001);
  assert.equal(reconstructSequenceNumber(0xfffe, 16, 0x30001), 0x2fffe);
  // High numbers stay exact.
  assert.equal(reconstructSequenceNumber(0x34, 8, 2 ** 48 - 0x100), 2 ** 48 - 0x100 + 0x34);
});

Deno.test("unified header: the epoch is the closest one with those low bits", () => {
  assert.equal(reconstructEpoch(3, 3), 3);
  assert.equal(reconstructEpoch(2, 3), 2);
  assert.equal(reconstructEpoch(0, 3), 4);
  assert.equal(reconstructEpoch(3, 4), 3);
  assert.equal(reconstructEpoch(1, 0), 1);
});
