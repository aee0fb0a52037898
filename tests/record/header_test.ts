import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ContentType,
  countMalformedRecords,
  DTLS_1_0,
  DTLS_1_2,
  encodeRecord,
  MAX_FRAGMENT_LENGTH,
  parseRecords,
  RECORD_HEADER_LENGTH,
  RecordCursor,
  writeRecord,
} from "../../src/record/header.ts";
import { concat, hex, toHex } from "../crypto/hex.ts";

Deno.test("header: constants", () => {
  assert.deepEqual(ContentType, {
    ChangeCipherSpec: 20,
    Alert: 21,
    Handshake: 22,
    ApplicationData: 23,
    Tls12Cid: 25,
  });
  assert.equal(RECORD_HEADER_LENGTH, 13);
  assert.equal(DTLS_1_2, 0xfefd);
  assert.equal(DTLS_1_0, 0xfeff);
  assert.equal(MAX_FRAGMENT_LENGTH, 18432);
});

Deno.test("header: encodes the RFC 6347 §4.1 layout byte for byte", () => {
  const record = encodeRecord(
    ContentType.Handshake,
    DTLS_1_2,
    0x0102,
    0x030405060708,
    hex("aabbcc"),
  );
  assert.equal(toHex(record), "16" + "fefd" + "0102" + "030405060708" + "0003" + "aabbcc");
});

Deno.test("header: parses one record into views of the datagram", () => {
  const datagram = encodeRecord(
    ContentType.ApplicationData,
    DTLS_1_2,
    1,
    2 ** 48 - 1,
    hex("0102030405"),
  );
  const { records, malformed } = parseRecords(datagram);
  assert.equal(malformed, 0);
  assert.equal(records.length, 1);
  const r = records[0]!;
  assert.equal(r.type, 23);
  assert.equal(r.version, DTLS_1_2);
  assert.equal(r.epoch, 1);
  assert.equal(r.seq, 2 ** 48 - 1);
  assert.equal(toHex(r.fragment), "0102030405");
  // Views, not copies.
  assert.equal(r.fragment.buffer, datagram.buffer);
  assert.equal(r.fragment.byteOffset, datagram.byteOffset + 13);
  assert.equal(r.raw.buffer, datagram.buffer);
  assert.deepEqual(r.raw, datagram);
});

function threeRecords(): Uint8Array {
  return concat(
    encodeRecord(ContentType.Handshake, DTLS_1_0, 0, 0, hex("01".repeat(20))),
    encodeRecord(ContentType.ChangeCipherSpec, DTLS_1_2, 0, 1, hex("01")),
    encodeRecord(ContentType.Handshake, DTLS_1_2, 1, 0, hex("ee".repeat(40))),
  );
}

Deno.test("header: walks several records in one datagram (RFC 6347 §4.1.1)", () => {
  const { records, malformed } = parseRecords(threeRecords());
  assert.equal(malformed, 0);
  assert.deepEqual(
    records.map((r) => [r.type, r.version, r.epoch, r.seq, r.fragment.length, r.raw.length]),
    [
      [22, DTLS_1_0, 0, 0, 20, 33],
      [20, DTLS_1_2, 0, 1, 1, 14],
      [22, DTLS_1_2, 1, 0, 40, 53],
    ],
  );
});

Deno.test("header: every truncation keeps the whole records and counts the cut one", () => {
  const datagram = threeRecords();
  const ends = [33, 47, 100];
  for (let cut = 0; cut <= datagram.length; cut++) {
    const { records, malformed } = parseRecords(datagram.subarray(0, cut));
    const whole = ends.filter((e) => e <= cut).length;
    assert.equal(records.length, whole, `cut ${cut}`);
    const atBoundary = cut === 0 || ends.includes(cut);
    assert.equal(malformed, atBoundary ? 0 : 1, `cut ${cut}`);
  }
});

Deno.test("header: a length running past the datagram stops the walk (RFC 6347 §4.1.2.7)", () => {
  const first = encodeRecord(ContentType.Handshake, DTLS_1_2, 0, 0, hex("0102"));
  const lying = encodeRecord(ContentType.Handshake, DTLS_1_2, 0, 1, hex("0102"));
  lying[12] = 50; // claims 50 bytes, has 2
  const after = encodeRecord(ContentType.Handshake, DTLS_1_2, 0, 2, hex("03"));
  const { records, malformed } = parseRecords(concat(first, lying, after));
  assert.equal(records.length, 1);
  assert.equal(records[0]!.seq, 0);
  assert.equal(malformed, 1);
});

Deno.test("header: an oversized fragment is malformed but its neighbours survive", () => {
  const big = new Uint8Array(RECORD_HEADER_LENGTH + MAX_FRAGMENT_LENGTH + 1);
  big[0] = ContentType.ApplicationData;
  big[1] = 0xfe;
  big[2] = 0xfd;
  big[11] = (MAX_FRAGMENT_LENGTH + 1) >>> 8;
  big[12] = (MAX_FRAGMENT_LENGTH + 1) & 0xff;
  const ok = encodeRecord(ContentType.Alert, DTLS_1_2, 0, 9, hex("0100"));
  const { records, malformed } = parseRecords(concat(ok, big, ok));
  assert.equal(malformed, 1);
  assert.equal(records.length, 2);
  // The limit itself is fine.
  const max = encodeRecord(
    ContentType.ApplicationData,
    DTLS_1_2,
    1,
    1,
    new Uint8Array(MAX_FRAGMENT_LENGTH),
  );
  assert.equal(parseRecords(max).records.length, 1);
});

Deno.test("header: unknown types and versions are returned for the caller to judge", () => {
  const datagram = concat(
    encodeRecord(99, 0x0303, 7, 8, hex("ff")),
    encodeRecord(0, 0xfefc, 0, 0, new Uint8Array(0)),
  );
  const { records, malformed } = parseRecords(datagram);
  assert.equal(malformed, 0);
  assert.deepEqual(records.map((r) => [r.type, r.version, r.fragment.length]), [[99, 0x0303, 1], [
    0,
    0xfefc,
    0,
  ]]);
});

Deno.test("header: an empty datagram has no records and nothing malformed", () => {
  assert.deepEqual(parseRecords(new Uint8Array(0)), { records: [], malformed: 0 });
});

Deno.test("header: writeRecord packs records back to back and returns the offset", () => {
  const out = new Uint8Array(100);
  let at = writeRecord(out, 0, ContentType.Handshake, DTLS_1_2, 0, 5, hex("aa"));
  assert.equal(at, 14);
  at = writeRecord(out, at, ContentType.ApplicationData, DTLS_1_2, 1, 6, hex("bbcc"));
  assert.equal(at, 29);
  const { records } = parseRecords(out.subarray(0, at));
  assert.deepEqual(records.map((r) => [r.type, r.epoch, r.seq, toHex(r.fragment)]), [
    [22, 0, 5, "aa"],
    [23, 1, 6, "bbcc"],
  ]);
});

Deno.test("header: out-of-range fields and short buffers are programming errors", () => {
  const f = hex("00");
  assert.throws(
    () => writeRecord(new Uint8Array(13), 0, 22, DTLS_1_2, 0, 0, f),
    /Cannot write record: 14 bytes/,
  );
  assert.throws(
    () => writeRecord(new Uint8Array(40), 30, 22, DTLS_1_2, 0, 0, f),
    /Cannot write record/,
  );
  assert.throws(
    () => writeRecord(new Uint8Array(40), -1, 22, DTLS_1_2, 0, 0, f),
    /Cannot write record/,
  );
  assert.throws(() => encodeRecord(256, DTLS_1_2, 0, 0, f), /content type 256/);
  assert.throws(() => encodeRecord(22, 0x10000, 0, 0, f), /version/);
  assert.throws(() => encodeRecord(22, DTLS_1_2, 0x10000, 0, f), /epoch 65536/);
  assert.throws(() => encodeRecord(22, DTLS_1_2, 0, 2 ** 48, f), /sequence number/);
  assert.throws(() => encodeRecord(22, DTLS_1_2, 0, -1, f), /sequence number/);
  assert.throws(() => encodeRecord(22, DTLS_1_2, 0, 1.5, f), /sequence number/);
  assert.throws(
    () => encodeRecord(22, DTLS_1_2, 0, 0, new Uint8Array(MAX_FRAGMENT_LENGTH + 1)),
    /fragment/,
  );
});

Deno.test("header: property: parse(concat(encode(r...))) gives back r..., and arbitrary bytes never throw", () => {
  const record = fc.record({
    type: fc.integer({ min: 0, max: 255 }),
    version: fc.integer({ min: 0, max: 0xffff }),
    epoch: fc.integer({ min: 0, max: 0xffff }),
    seq: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }).map((n) => n % 2 ** 48),
    fragment: fc.uint8Array({ maxLength: 64 }),
  });
  fc.assert(
    fc.property(fc.array(record, { maxLength: 6 }), (rs) => {
      const datagram = concat(
        ...rs.map((r) => encodeRecord(r.type, r.version, r.epoch, r.seq, r.fragment)),
      );
      const { records, malformed } = parseRecords(datagram);
      assert.equal(malformed, 0);
      assert.deepEqual(
        records.map((r) => ({
          type: r.type,
          version: r.version,
          epoch: r.epoch,
          seq: r.seq,
          fragment: r.fragment,
        })),
        rs.map((r) => ({ ...r, fragment: new Uint8Array(r.fragment) })),
      );
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const { records, malformed } = parseRecords(bytes);
      const used = records.reduce((n, r) => n + r.raw.length, 0);
      // No oversized record fits in 200 bytes, so at most the one that stops the walk.
      assert.ok(malformed === 0 || malformed === 1);
      // Records tile a prefix; nothing is left over unless one was malformed.
      assert.equal(used === bytes.length, malformed === 0);
    }),
  );
});

Deno.test("header: one cursor reused across datagrams, even reset mid-walk, walks as a fresh parse; the malformed count agrees", () => {
  const cursor = new RecordCursor();
  // encodeRecord refuses an oversized fragment: its header is written by hand.
  const oversized = new Uint8Array(RECORD_HEADER_LENGTH + MAX_FRAGMENT_LENGTH + 1);
  oversized.set([ContentType.ApplicationData, 0xfe, 0xfd], 0);
  oversized[11] = (MAX_FRAGMENT_LENGTH + 1) >>> 8;
  oversized[12] = (MAX_FRAGMENT_LENGTH + 1) & 0xff;
  const good = encodeRecord(23, DTLS_1_2, 1, 2, new Uint8Array([1, 2, 3]));
  const cases = [
    new Uint8Array(0),
    good,
    concat(good, oversized, good),
    concat(good, good.subarray(0, 10)),
    concat(good, new Uint8Array(5)),
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      cases.push(bytes);
    }),
    { numRuns: 200 },
  );
  // Left half-walked: the next reset must not carry anything over.
  const interrupter = concat(good, oversized, good, good.subarray(0, 4));
  for (const datagram of cases) {
    cursor.reset(interrupter);
    cursor.next();
    const walked = [];
    cursor.reset(datagram);
    while (cursor.next()) walked.push(cursor.view());
    const parsed = parseRecords(datagram);
    assert.deepEqual(walked, parsed.records);
    assert.equal(cursor.malformed, parsed.malformed);
    assert.equal(countMalformedRecords(datagram), parsed.malformed);
  }
  assert.equal(countMalformedRecords(concat(good, oversized, good)), 1);
  assert.equal(countMalformedRecords(concat(good, good.subarray(0, 10))), 1);
  assert.equal(countMalformedRecords(interrupter), 2);
});

Deno.test("header: a tls12_cid record is framed with the CID length the walk is told (RFC 9146 §4)", () => {
  const cidRecord = hex("19" + "fefd" + "0001" + "000000000007" + "c0ffee" + "0002" + "abcd");
  const plain = encodeRecord(ContentType.ApplicationData, DTLS_1_2, 1, 8, hex("0102"));
  const { records, malformed } = parseRecords(concat(cidRecord, plain), 3);
  assert.equal(malformed, 0);
  assert.equal(records.length, 2);
  assert.equal(records[0]!.type, 25);
  assert.equal(toHex(records[0]!.cid), "c0ffee");
  assert.equal(toHex(records[0]!.fragment), "abcd");
  assert.equal(records[0]!.seq, 7);
  assert.equal(toHex(records[0]!.raw), toHex(cidRecord));
  assert.equal(records[1]!.cid.length, 0);
  assert.equal(toHex(records[1]!.fragment), "0102");
  // Every cut of the CID record leaves nothing well framed.
  for (let n = 1; n < cidRecord.length; n++) {
    const cut = parseRecords(cidRecord.subarray(0, n), 3);
    assert.equal(cut.records.length, 0, `cut at ${n}`);
    assert.equal(cut.malformed, 1, `cut at ${n}`);
    assert.equal(countMalformedRecords(cidRecord.subarray(0, n), 3), 1);
  }
  // A walk told of no CIDs frames it as any record: its length field is then CID bytes.
  assert.equal(parseRecords(cidRecord, 0).records.length, 0);
});
