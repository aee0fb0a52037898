import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../../src/codec/reader.ts";
import {
  encodeHandshakeMessage,
  fragmentHandshakeMessage,
  HANDSHAKE_HEADER_LENGTH,
  type HandshakeFragment,
  HandshakeReassembler,
  MAX_PIECES,
  MessageReassembler,
  parseHandshakeFragments,
} from "../../src/handshake/fragments.ts";
import { BUFFER_OVERHEAD } from "../../src/memory/budget.ts";
import {
  decodeClientHello,
  decodeEcdhePskServerKeyExchange,
  decodeServerHello,
  decodeServerHelloDone,
  HandshakeType,
} from "../../src/handshake/messages.ts";

function hex(...parts: string[]): Uint8Array {
  const s = parts.join("").replace(/\s+/g, "");
  assert.equal(s.length % 2, 0, "odd hex");
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The handshake-record payloads of a datagram: a minimal DTLS record splitter
 * (13-byte header, length in its last two bytes) so that captures can be
 * given exactly as they crossed the wire.
 */
function records(datagram: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < datagram.length;) {
    assert.equal(datagram[at], 22, "handshake record");
    const length = (datagram[at + 11]! << 8) | datagram[at + 12]!;
    out.push(datagram.subarray(at + 13, at + 13 + length));
    at += 13 + length;
  }
  return out;
}

function onlyDecodeError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
  }
}

const ALL = { maxMessageLength: 1 << 16, maxBufferedBytes: 1 << 20 };

// ---------------------------------------------------------------------------
// Captured datagrams: `openssl s_client -dtls1_2 -mtu 256 -cipher ALL:PSK`
// against `openssl s_server -dtls1_2 -mtu 256 -nocert -psk ...` (OpenSSL
// 3.0), recorded with tshark on loopback. The UDP payloads are given whole.
// ---------------------------------------------------------------------------

/** The first ClientHello (364 bytes), part 1 of 2: bytes 0..202. */
const CLIENT_HELLO_PART_1 = hex(
  "16 feff 0000 000000000000 00d7", // record: handshake, DTLS 1.0, epoch 0, seq 0, 215 bytes
  "01 00016c 0000 000000 0000cb", // ClientHello, length 364, seq 0, offset 0, 203 bytes
  "fefd380422af078b8ae28cd3d30e849680c43196d76d2ad8da7b29de9e90639d704d000000f0c02cc03000a3009fcca9",
  "cca8ccaac0afc0adc0a3c09fc05dc061c057c053c02bc02f00a2009ec0aec0acc0a2c09ec05cc060c056c052c024c028",
  "006b006ac073c07700c400c3c023c02700670040c072c07600be00bdc00ac0140039003800880087c009c01300330032",
  "0045004400ad00abccaeccadccacc0abc0a7c06fc06d009dc0a1c09dc05100a9ccabc0a9c0a5c06b00ac00aac0aac0a6",
  "c06ec06c009cc0a0c09cc0",
);

/** The first ClientHello, part 2 of 2: bytes 203..363. */
const CLIENT_HELLO_PART_2 = hex(
  "16 feff 0000 000000000001 00ad", // record: seq 1, 173 bytes
  "01 00016c 0000 0000cb 0000a1", // ClientHello, length 364, seq 0, offset 203, 161 bytes
  "5000a8c0a8c0a4c06a003d00c0003c00bac038c03600b700b300950091c09bc099c0970035008400af008dc095c037c0",
  "3500b600b200940090c09ac098c096002f004100ae008cc09400ff01000052000b000403000102000a000c000a001d00",
  "17001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b08040805080604",
  "0105010601030303010302040205020602",
);

/** The server's first flight: three records in one datagram. */
const SERVER_FLIGHT = hex(
  "16 fefd 0000 000000000001 0041", // record 1
  "02 000035 0001 000000 000035", // ServerHello, 53 bytes, seq 1
  "fefdb238ed9b1f623c977027d78b634a94bc71968f59e8df6dc88a200a436c8aea4700ccac00000dff01000100002300",
  "00001700 00",
  "16 fefd 0000 000000000002 0032", // record 2
  "0c 000026 0002 000000 000026", // ServerKeyExchange, 38 bytes, seq 2
  "000003001d204cdaaa93f153934c88bd7a94669bfe4a8204b2d6a39e6f2fb1c906677766227b",
  "16 fefd 0000 000000000003 000c", // record 3
  "0e 000000 0003 000000 000000", // ServerHelloDone, empty, seq 3
);

Deno.test("captured fragmented ClientHello: parse, reassemble in either order, decode", () => {
  const [f1] = parseHandshakeFragments(records(CLIENT_HELLO_PART_1)[0]!);
  const [f2] = parseHandshakeFragments(records(CLIENT_HELLO_PART_2)[0]!);
  assert.ok(f1 && f2);
  assert.deepEqual(
    [f1.msgType, f1.length, f1.messageSeq, f1.fragmentOffset, f1.fragmentLength],
    [HandshakeType.ClientHello, 364, 0, 0, 203],
  );
  assert.deepEqual([f2.fragmentOffset, f2.fragmentLength], [203, 161]);
  assert.equal(f1.body.buffer, CLIENT_HELLO_PART_1.buffer, "fragment bodies are subarrays");

  for (const order of [[f1, f2], [f2, f1]]) {
    const m = new MessageReassembler(1, 364, 0, 4096);
    assert.equal(m.add(order[0]!), "ok");
    assert.equal(m.complete, false);
    assert.equal(m.add(order[1]!), "ok");
    assert.equal(m.complete, true);
    const body = m.message();
    assert.deepEqual(body, concat(f1.body, f2.body));
    const hello = decodeClientHello(body);
    assert.equal(hello.cookie.length, 0);
    assert.equal(hello.cipherSuites.length, 120);
    assert.ok(hello.cipherSuites.includes(0xccac));
    // The transcript form (RFC 6347 §4.2.6): one header with offset 0 and
    // fragment_length = length, then the whole body.
    assert.deepEqual(
      encodeHandshakeMessage(1, 0, body),
      concat(hex("01 00016c 0000 000000 00016c"), body),
    );
  }
});

Deno.test("captured server flight: records delivered in message_seq order", () => {
  const q = new HandshakeReassembler(ALL);
  q.nextSeq = 1; // after a stateless HelloVerifyRequest exchange
  // Feed the records backwards; delivery must still be in order.
  for (const rec of records(SERVER_FLIGHT).reverse()) {
    for (const f of parseHandshakeFragments(rec)) assert.equal(q.add(f), "buffered");
  }
  const got = [q.next(), q.next(), q.next(), q.next()];
  assert.deepEqual(got.map((m) => m?.messageSeq), [1, 2, 3, undefined]);
  assert.deepEqual(got.map((m) => m?.msgType), [2, 12, 14, undefined]);
  assert.equal(decodeServerHello(got[0]!.body).cipherSuite, 0xccac);
  assert.equal(decodeEcdhePskServerKeyExchange(got[1]!.body).group, 29);
  decodeServerHelloDone(got[2]!.body);
  assert.equal(q.nextSeq, 4);
  assert.equal(q.bufferedBytes, 0);
  // Each record holds a message exactly as encodeHandshakeMessage writes it.
  for (const [i, rec] of records(SERVER_FLIGHT).entries()) {
    assert.deepEqual(
      encodeHandshakeMessage(got[i]!.msgType, got[i]!.messageSeq, got[i]!.body),
      rec,
    );
  }
});

Deno.test("encodeHandshakeMessage: header layout (RFC 6347 §4.2.2)", () => {
  assert.equal(HANDSHAKE_HEADER_LENGTH, 12);
  assert.deepEqual(
    encodeHandshakeMessage(HandshakeType.ServerHelloDone, 3, new Uint8Array(0)),
    hex("0e 000000 0003 000000 000000"),
  );
  assert.deepEqual(
    encodeHandshakeMessage(HandshakeType.Finished, 0x1234, hex("aabbcc")),
    hex("14 000003 1234 000000 000003 aabbcc"),
  );
  assert.throws(() => encodeHandshakeMessage(256, 0, hex("")), RangeError);
  assert.throws(() => encodeHandshakeMessage(1, 0x10000, hex("")), RangeError);
  assert.throws(() => encodeHandshakeMessage(1, -1, hex("")), RangeError);
});

Deno.test("parseHandshakeFragments: several messages in one record (RFC 6347 §4.2.3)", () => {
  const rec = concat(
    encodeHandshakeMessage(2, 1, hex("0102")),
    encodeHandshakeMessage(12, 2, hex("0000")),
    encodeHandshakeMessage(14, 3, hex("")),
  );
  const fs = parseHandshakeFragments(rec);
  const fields = fs.map((f) => `${f.msgType}/${f.messageSeq}/${f.length}`);
  assert.deepEqual(fields, ["2/1/2", "12/2/2", "14/3/0"]);
  assert.deepEqual(fs[0]!.body, hex("0102"));
});

Deno.test("parseHandshakeFragments: malformed records throw DecodeError", () => {
  assert.throws(() => parseHandshakeFragments(new Uint8Array(0)), /Handshake: empty record/);
  // Every truncation of a one-fragment record.
  const rec = records(CLIENT_HELLO_PART_2)[0]!;
  for (let n = 0; n < rec.length; n++) {
    assert.throws(() => parseHandshakeFragments(rec.slice(0, n)), DecodeError, `prefix ${n}`);
  }
  // Fragment bytes running past the record.
  assert.throws(
    () => parseHandshakeFragments(hex("01 00000a 0000 000000 00000a 0102")),
    DecodeError,
  );
  // A fragment running past its message.
  assert.throws(
    () => parseHandshakeFragments(hex("01 000004 0000 000003 000002 0102")),
    /fragment runs past message length/,
  );
  // A good fragment followed by a partial header.
  assert.throws(
    () => parseHandshakeFragments(hex("0e 000000 0003 000000 000000 0e00")),
    DecodeError,
  );
});

Deno.test("parseHandshakeFragments: a huge declared length costs nothing to parse", () => {
  const [f] = parseHandshakeFragments(hex("01 ffffff 0000 000000 000002 0102"));
  assert.equal(f?.length, 0xffffff);
  assert.equal(f?.body.length, 2);
});

Deno.test("parseHandshakeFragments: arbitrary bytes throw only DecodeError; results are consistent", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      onlyDecodeError(() => {
        for (const f of parseHandshakeFragments(b)) {
          assert.equal(f.body.length, f.fragmentLength);
          assert.ok(f.fragmentOffset + f.fragmentLength <= f.length);
        }
      });
    }),
    { numRuns: 2000 },
  );
  // Mostly well-formed input reaches further than random bytes.
  const fragment = fc.record({
    type: fc.integer({ min: 0, max: 255 }),
    seq: fc.integer({ min: 0, max: 0xffff }),
    body: fc.uint8Array({ maxLength: 30 }),
  });
  fc.assert(
    fc.property(
      fc.array(fragment, { maxLength: 4 }),
      fc.nat(),
      fc.integer({ min: 0, max: 255 }),
      (fs, at, v) => {
        const rec = concat(...fs.map((f) => encodeHandshakeMessage(f.type, f.seq, f.body)));
        if (rec.length > 0) rec[at % rec.length] = v;
        onlyDecodeError(() => parseHandshakeFragments(rec));
      },
    ),
  );
});

Deno.test("fragmentHandshakeMessage: bounded chunks that parse back to the message", () => {
  const body = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
  const chunks = fragmentHandshakeMessage(1, 7, body, 300);
  assert.deepEqual(chunks.map((c) => c.length), [312, 312, 312, 112]);
  const fs = chunks.flatMap(parseHandshakeFragments);
  assert.deepEqual(fs.map((f) => f.fragmentOffset), [0, 300, 600, 900]);
  assert.deepEqual(fs.map((f) => f.fragmentLength), [300, 300, 300, 100]);
  for (const f of fs) assert.deepEqual([f.msgType, f.length, f.messageSeq], [1, 1000, 7]);
  assert.deepEqual(concat(...fs.map((f) => f.body)), body);
  // A body that fits is one chunk, identical to the unfragmented message.
  assert.deepEqual(fragmentHandshakeMessage(1, 7, body, 1000), [
    encodeHandshakeMessage(1, 7, body),
  ]);
  // An empty body still yields one fragment.
  assert.deepEqual(fragmentHandshakeMessage(14, 3, new Uint8Array(0), 10), [
    hex("0e 000000 0003 000000 000000"),
  ]);
  assert.throws(() => fragmentHandshakeMessage(1, 7, body, 0), RangeError);
  assert.throws(() => fragmentHandshakeMessage(1, 7, body, 1.5), RangeError);
});

/** A message fragmented twice at different sizes, in some order, with duplicates. */
const scenario = fc
  .record({
    body: fc.uint8Array({ maxLength: 1500 }),
    a: fc.integer({ min: 1, max: 400 }),
    b: fc.integer({ min: 1, max: 400 }),
  })
  .chain(({ body, a, b }) => {
    const cut = (size: number) =>
      fragmentHandshakeMessage(HandshakeType.ClientHello, 5, body, size).flatMap(
        parseHandshakeFragments,
      );
    const primary = cut(a);
    const other = cut(b);
    return fc.tuple(fc.subarray(other), fc.subarray(primary)).chain(([extra, dups]) => {
      const all = [...primary, ...extra, ...dups];
      return fc
        .shuffledSubarray(all, { minLength: all.length, maxLength: all.length })
        .map((order) => ({ body, order }));
    });
  });

Deno.test("MessageReassembler: any order, duplicates and overlaps give the original (property)", () => {
  fc.assert(
    fc.property(scenario, ({ body, order }) => {
      const m = new MessageReassembler(HandshakeType.ClientHello, body.length, 5, 1 << 16);
      const covered = new Uint8Array(body.length);
      let count = 0;
      assert.equal(m.complete, false);
      for (const f of order) {
        assert.equal(m.add(f), "ok");
        for (let i = f.fragmentOffset; i < f.fragmentOffset + f.fragmentLength; i++) {
          if (!covered[i]) count++;
          covered[i] = 1;
        }
        // Complete exactly when every byte has arrived.
        assert.equal(m.complete, count === body.length);
      }
      assert.equal(m.complete, true);
      assert.deepEqual(m.message(), body);
    }),
  );
});

Deno.test("HandshakeReassembler: any order gives the original, once (property)", () => {
  fc.assert(
    fc.property(scenario, ({ body, order }) => {
      const q = new HandshakeReassembler(ALL);
      q.nextSeq = 5;
      for (const f of order) assert.equal(q.add(f), "buffered");
      // Exactly the bytes that arrived, once each, plus each piece's overhead;
      // nothing for a message that came whole and next in line.
      const whole = order[0]!.fragmentOffset === 0 && order[0]!.fragmentLength === body.length;
      const overhead = q.bufferedBytes - body.length;
      if (whole) assert.equal(q.bufferedBytes, 0);
      else assert.ok(overhead % BUFFER_OVERHEAD === 0 && overhead <= MAX_PIECES * BUFFER_OVERHEAD);
      const m = q.next();
      assert.deepEqual(m, { msgType: HandshakeType.ClientHello, messageSeq: 5, epoch: 0, body });
      assert.equal(q.next(), undefined);
      assert.equal(q.nextSeq, 6);
      assert.equal(q.bufferedBytes, 0);
      // A retransmission of the same message is now old news.
      for (const f of order) assert.equal(q.add(f), "old");
    }),
  );
});

function frag(
  msgType: number,
  length: number,
  messageSeq: number,
  fragmentOffset: number,
  body: Uint8Array,
): HandshakeFragment {
  return { msgType, length, messageSeq, fragmentOffset, fragmentLength: body.length, body };
}

Deno.test("MessageReassembler: overlapping fragment with different bytes is inconsistent", () => {
  const m = new MessageReassembler(1, 10, 0, 100);
  assert.equal(m.add(frag(1, 10, 0, 0, hex("000102030405"))), "ok");
  assert.equal(m.add(frag(1, 10, 0, 4, hex("04ff060708 09"))), "inconsistent");
  assert.equal(m.complete, false, "the rejected fragment left no trace");
  assert.equal(m.add(frag(1, 10, 0, 4, hex("0405060708 09"))), "ok");
  assert.equal(m.complete, true);
  assert.deepEqual(m.message(), hex("00010203040506070809"));
  // Once complete, duplicates must still agree.
  assert.equal(m.add(frag(1, 10, 0, 2, hex("0203"))), "ok");
  assert.equal(m.add(frag(1, 10, 0, 9, hex("ff"))), "inconsistent");
  assert.deepEqual(m.message(), hex("00010203040506070809"));
});

Deno.test("MessageReassembler: a different type, length or seq is inconsistent", () => {
  const m = new MessageReassembler(1, 4, 2, 100);
  assert.equal(m.add(frag(1, 4, 2, 0, hex("aa"))), "ok");
  assert.equal(m.add(frag(2, 4, 2, 1, hex("bb"))), "inconsistent");
  assert.equal(m.add(frag(1, 5, 2, 1, hex("bb"))), "inconsistent");
  assert.equal(m.add(frag(1, 4, 3, 1, hex("bb"))), "inconsistent");
  // A hand-built fragment that does not fit, or lies about its length.
  assert.equal(m.add(frag(1, 4, 2, 3, hex("bbcc"))), "inconsistent");
  assert.equal(m.add({ ...frag(1, 4, 2, 1, hex("bb")), fragmentLength: 2 }), "inconsistent");
  assert.equal(m.complete, false);
  assert.throws(() => m.message(), /incomplete/);
});

Deno.test("MessageReassembler: an empty message is complete once a fragment arrives", () => {
  const m = new MessageReassembler(14, 0, 3, 100);
  assert.equal(m.complete, false);
  assert.equal(m.add(frag(14, 0, 3, 0, hex(""))), "ok");
  assert.equal(m.complete, true);
  assert.equal(m.message().length, 0);
});

Deno.test("MessageReassembler: empty fragments of a non-empty message change nothing", () => {
  const m = new MessageReassembler(1, 3, 0, 100);
  assert.equal(m.add(frag(1, 3, 0, 1, hex(""))), "ok");
  assert.equal(m.complete, false);
  assert.equal(m.add(frag(1, 3, 0, 0, hex("010203"))), "ok");
  assert.equal(m.complete, true);
});

Deno.test("a declared length allocates nothing: 16 MB over the bound is overflow, 16 KB holds only what arrived", () => {
  const [f] = parseHandshakeFragments(hex("01 ffffff 0000 000000 000004 01020304"));
  assert.throws(() => new MessageReassembler(1, 0xffffff, 0, 16384), {
    name: "DecodeError",
    message: /exceed the limit of 16384/,
  });
  const q = new HandshakeReassembler({ maxMessageLength: 16384, maxBufferedBytes: 1 << 20 });
  assert.equal(q.add(f!), "overflow");
  assert.equal(q.bufferedBytes, 0);
  assert.equal(q.next(), undefined);
  // The bound itself is allowed, and costs what arrived, not what was declared.
  assert.equal(q.add(frag(1, 16384, 0, 0, hex("00"))), "buffered");
  assert.equal(q.bufferedBytes, 1 + BUFFER_OVERHEAD);
});

Deno.test("HandshakeReassembler: same message_seq with a different type is inconsistent", () => {
  const q = new HandshakeReassembler(ALL);
  assert.equal(q.add(frag(1, 4, 0, 0, hex("0102"))), "buffered");
  assert.equal(q.add(frag(16, 4, 0, 2, hex("0304"))), "inconsistent");
  assert.equal(q.add(frag(1, 5, 0, 2, hex("0304"))), "inconsistent");
  assert.equal(q.add(frag(1, 4, 0, 1, hex("ff"))), "inconsistent");
  assert.equal(q.next(), undefined);
  assert.equal(q.add(frag(1, 4, 0, 2, hex("0304"))), "buffered");
  assert.deepEqual(q.next(), { msgType: 1, messageSeq: 0, epoch: 0, body: hex("01020304") });
  // A first fragment that contradicts its own header takes no slot.
  assert.equal(q.add({ ...frag(2, 4, 1, 3, hex("0102")) }), "inconsistent");
  assert.equal(q.bufferedBytes, 0);
});

Deno.test("HandshakeReassembler: bytes are charged as they arrive, within its limit and window", () => {
  const O = BUFFER_OVERHEAD;
  const q = new HandshakeReassembler({
    maxMessageLength: 80,
    maxBufferedBytes: 100 + 2 * O,
    window: 4,
  });
  assert.equal(q.nextSeq, 0);
  assert.equal(q.add(frag(1, 60, 0, 0, new Uint8Array(30))), "buffered");
  assert.equal(q.bufferedBytes, 30 + O, "30 of the 60 declared bytes arrived");
  assert.equal(q.add(frag(2, 81, 1, 0, new Uint8Array(1))), "overflow", "over maxMessageLength");
  assert.equal(q.add(frag(2, 80, 1, 0, new Uint8Array(71))), "overflow", "30 + 71 > 100");
  assert.equal(q.bufferedBytes, 30 + O, "a refused fragment leaves nothing");
  assert.equal(q.add(frag(2, 80, 1, 0, new Uint8Array(70))), "buffered");
  assert.equal(q.bufferedBytes, 100 + 2 * O);
  assert.equal(q.add(frag(3, 0, 3, 0, hex(""))), "buffered", "empty messages cost nothing");
  assert.equal(q.add(frag(3, 0, 4, 0, hex(""))), "future", "seq 4 is past the window 0..3");
  assert.equal(q.add(frag(1, 60, 0, 30, new Uint8Array(30))), "overflow", "no room left");
  // seq 1 and 3 wait for seq 0.
  assert.equal(q.next(), undefined);
  q.nextSeq = 1; // give up on seq 0: its bytes are freed
  assert.equal(q.bufferedBytes, 70 + O);
  assert.equal(q.add(frag(2, 80, 1, 70, new Uint8Array(10))), "buffered");
  assert.equal(q.next()?.body.length, 80);
  assert.equal(q.bufferedBytes, 0);
  assert.equal(q.next(), undefined, "seq 2 never came");
  q.nextSeq = 3;
  assert.deepEqual(q.next(), { msgType: 3, messageSeq: 3, epoch: 0, body: new Uint8Array(0) });
  assert.equal(q.add(frag(1, 60, 0, 0, new Uint8Array(60))), "old");
  assert.equal(q.add(frag(3, 0, 5, 0, hex(""))), "buffered", "the window moved");
  assert.equal(q.add(frag(3, 0, 8, 0, hex(""))), "future");
});

Deno.test("MessageReassembler: scattered one-byte fragments stop at MAX_PIECES and copy nothing twice", () => {
  const O = BUFFER_OVERHEAD;
  const q = new HandshakeReassembler({ maxMessageLength: 16384, maxBufferedBytes: 1 << 20 });
  for (let i = 0; i < MAX_PIECES; i++) {
    assert.equal(q.add(frag(1, 16384, 0, i * 2, hex("00"))), "buffered");
  }
  assert.equal(q.bufferedBytes, MAX_PIECES * (1 + O));
  assert.equal(q.add(frag(1, 16384, 0, 1000, hex("00"))), "busy", "a new piece past the cap");
  assert.equal(q.add(frag(1, 16384, 0, 0, hex("00"))), "buffered", "a duplicate needs no piece");
  // A fragment spanning the scattered bytes fills the gaps between them.
  assert.equal(q.add(frag(1, 16384, 0, 0, new Uint8Array(MAX_PIECES * 2))), "busy");
  assert.equal(q.bufferedBytes, MAX_PIECES * (1 + O));
});

Deno.test("HandshakeReassembler: setting nextSeq drops what falls outside the window", () => {
  const O = BUFFER_OVERHEAD;
  const q = new HandshakeReassembler({ maxMessageLength: 100, maxBufferedBytes: 1000, window: 3 });
  q.add(frag(1, 10, 0, 0, new Uint8Array(5)));
  q.add(frag(1, 20, 1, 0, new Uint8Array(5)));
  q.add(frag(1, 30, 2, 0, new Uint8Array(30)));
  assert.equal(q.bufferedBytes, 40 + 3 * O);
  q.nextSeq = 2;
  assert.equal(q.bufferedBytes, 30 + O);
  assert.deepEqual(q.next()?.messageSeq, 2);
  q.add(frag(1, 40, 3, 0, new Uint8Array(5)));
  q.nextSeq = 0; // moving back drops seq 3, which is now beyond 0..2
  assert.equal(q.bufferedBytes, 0);
  assert.throws(() => (q.nextSeq = -1), RangeError);
  assert.throws(() => new HandshakeReassembler({ ...ALL, window: 0 }), RangeError);
});

Deno.test("HandshakeReassembler: clear() frees everything and keeps nextSeq", () => {
  const q = new HandshakeReassembler(ALL);
  q.nextSeq = 2;
  q.add(frag(1, 10, 2, 0, new Uint8Array(10)));
  q.add(frag(1, 10, 3, 0, new Uint8Array(4)));
  q.clear();
  assert.equal(q.bufferedBytes, 0);
  assert.equal(q.nextSeq, 2);
  assert.equal(q.next(), undefined);
});

Deno.test("HandshakeReassembler: arbitrary fragment streams keep every bound (property)", () => {
  const fragment = fc
    .record({
      msgType: fc.constantFrom(1, 16, 20),
      length: fc.integer({ min: 0, max: 60 }),
      messageSeq: fc.integer({ min: 0, max: 10 }),
      start: fc.nat(),
      size: fc.nat(),
      fill: fc.integer({ min: 0, max: 2 }),
    })
    .map(({ msgType, length, messageSeq, start, size, fill }) => {
      const offset = length === 0 ? 0 : start % length;
      const n = Math.min(size % 20, length - offset);
      return frag(msgType, length, messageSeq, offset, new Uint8Array(n).fill(fill));
    });
  const results = new Set(["buffered", "old", "future", "inconsistent", "overflow"]);
  fc.assert(
    fc.property(fc.array(fragment, { maxLength: 80 }), (fs) => {
      const q = new HandshakeReassembler({
        maxMessageLength: 48,
        maxBufferedBytes: 100,
        window: 4,
      });
      let expected = 0;
      for (const f of fs) {
        assert.ok(results.has(q.add(f)));
        assert.ok(q.bufferedBytes <= 100);
        for (let m = q.next(); m; m = q.next()) {
          assert.equal(m.messageSeq, expected++, "strictly in order");
          assert.ok(m.body.length <= 48);
        }
        assert.equal(q.nextSeq, expected);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("HandshakeReassembler: a whole message next in line costs nothing, even with the account full", () => {
  const full = { charge: () => false, release: () => {} };
  const q = new HandshakeReassembler({ ...ALL, account: full });
  assert.equal(q.add(frag(16, 4, 0, 0, hex("01020304"))), "buffered");
  assert.equal(q.bufferedBytes, 0);
  assert.deepEqual(q.next()?.body, hex("01020304"));
  // A fragment, or a whole message ahead of its turn, must be held: refused.
  assert.equal(q.add(frag(16, 4, 1, 0, hex("0102"))), "busy");
  assert.equal(q.add(frag(16, 4, 2, 0, hex("01020304"))), "busy");
});

Deno.test("HandshakeReassembler: a message is in one epoch; an older epoch's fragments never join or outlive a newer one", () => {
  const q = new HandshakeReassembler(ALL);
  // Anyone can send epoch 0: its fragment of message 0 is kept...
  assert.equal(q.add(frag(20, 4, 0, 0, hex("0102")), 0), "buffered");
  // ...until the peer's own, in epoch 1, replaces it.
  assert.equal(q.add(frag(20, 4, 0, 0, hex("aabb")), 1), "buffered");
  assert.equal(q.add(frag(20, 4, 0, 2, hex("0304")), 0), "stale", "epoch 0 cannot join epoch 1");
  assert.equal(q.add(frag(20, 4, 0, 2, hex("ccdd")), 1), "buffered");
  assert.deepEqual(q.next(), { msgType: 20, messageSeq: 0, epoch: 1, body: hex("aabbccdd") });
  // What epoch 0 left for later messages goes when epoch 1 is read.
  assert.equal(q.add(frag(20, 4, 2, 0, hex("01")), 0), "buffered");
  assert.ok(q.bufferedBytes > 0);
  q.dropEpochsBelow(1);
  assert.equal(q.bufferedBytes, 0);
});
