import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../../src/codec/reader.ts";
import {
  AlertDescription,
  AlertLevel,
  alertName,
  type ClientHello,
  decodeAlert,
  decodeClientHello,
  decodeEcdhePskClientKeyExchange,
  decodeEcdhePskServerKeyExchange,
  decodeFinished,
  decodeHelloVerifyRequest,
  decodePskClientKeyExchange,
  decodePskServerKeyExchange,
  decodeServerHello,
  decodeServerHelloDone,
  encodeAlert,
  encodeClientHello,
  encodeEcdhePskClientKeyExchange,
  encodeEcdhePskServerKeyExchange,
  encodeFinished,
  encodeHelloVerifyRequest,
  encodePskClientKeyExchange,
  encodePskServerKeyExchange,
  encodeServerHello,
  encodeServerHelloDone,
  HandshakeType,
  type ServerHello,
} from "../../src/handshake/messages.ts";

/** Bytes from hex parts; whitespace is ignored so captures can be laid out by field. */
function hex(...parts: string[]): Uint8Array {
  const s = parts.join("").replace(/\s+/g, "");
  assert.equal(s.length % 2, 0, "odd hex");
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

const text = (s: string) => new TextEncoder().encode(s);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Runs `f`, accepting success or a DecodeError and nothing else. */
function onlyDecodeError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
  }
}

// ---------------------------------------------------------------------------
// Captured bytes. Every body below was recorded from OpenSSL 3.0 talking DTLS
// 1.2 to itself (`openssl s_server -dtls1_2 -nocert -psk ...` and
// `openssl s_client -dtls1_2 -psk ... -msg`), with the 12-byte handshake
// header removed, and is laid out here field by field.
// ---------------------------------------------------------------------------

/** The second ClientHello (cookie echoed) of an ECDHE-PSK-CHACHA20-POLY1305 handshake. */
const CLIENT_HELLO = hex(
  "fefd", // client_version: DTLS 1.2
  "6dfc3e5096b177811ad4e7048bb6b7b44efaf56ef1045941" + "14934c7a13596770", // random
  "00", // session_id: empty
  "14 f2b0c158fbab88f52b126df541c0d6f871d0fd40", // cookie<20>
  "000a ccac c037 00a8 c0a8 00ff", // cipher_suites<10>: 5 suites, the last the SCSV
  "01 00", // compression_methods<1>: null
  "0052", // extensions<82>
  "000b 0004 03 000102", // ec_point_formats: uncompressed, 2 compressed forms
  "000a 000c 000a 001d 0017 001e 0019 0018", // supported_groups: x25519 P-256 x448 P-521 P-384
  "0023 0000", // session_ticket: empty
  "0016 0000", // encrypt_then_mac
  "0017 0000", // extended_master_secret
  "000d 002a 0028", // signature_algorithms<42>, list<40>
  "0403 0503 0603 0807 0808 0809 080a 080b 0804 0805 0806 0401 0501 0601 0303 0301 0302 0402",
  "0502 0602",
);

/** The first ClientHello (no cookie yet) of a PSK-AES128-GCM-SHA256 handshake. */
const CLIENT_HELLO_NO_COOKIE = hex(
  "fefd", // client_version
  "3a712dffed97b2bc8e4d2aa50c2456e6f745c5a443c1fae0d1f812808b6cd027", // random
  "00", // session_id: empty
  "00", // cookie: empty
  "0004 00a8 00ff", // cipher_suites: PSK_WITH_AES_128_GCM_SHA256, SCSV
  "01 00", // compression_methods: null
  "003a", // extensions<58>
  "0023 0000 0016 0000 0017 0000", // session_ticket, encrypt_then_mac, extended_master_secret
  "000d 002a 0028 0403 0503 0603 0807 0808 0809 080a 080b 0804 0805 0806 0401 0501 0601 0303",
  "0301 0302 0402 0502 0602",
);

/** The HelloVerifyRequest answering the first ClientHello of the ECDHE handshake. */
const HELLO_VERIFY_REQUEST = hex(
  "feff", // server_version: DTLS 1.0, as RFC 6347 §4.2.1 recommends
  "14 f2b0c158fbab88f52b126df541c0d6f871d0fd40", // cookie<20>
);

/** The ServerHello of the ECDHE-PSK handshake. */
const SERVER_HELLO = hex(
  "fefd", // server_version: DTLS 1.2
  "231426e079e5245276143c65f4c17438ce10965bd9312b9353c9545e3a17e849", // random
  "00", // session_id: empty (a ticket is coming)
  "ccac", // TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
  "00", // compression_method: null
  "000d", // extensions<13>
  "ff01 0001 00", // renegotiation_info: empty renegotiated_connection
  "0023 0000", // session_ticket
  "0017 0000", // extended_master_secret
);

/** ServerKeyExchange for PSK with hint "server hint". */
const PSK_SKE = hex("000b", "7365727665722068696e74");

/** ServerKeyExchange for ECDHE_PSK: no hint, x25519 key. */
const ECDHE_PSK_SKE = hex(
  "0000", // psk_identity_hint: empty
  "03", // curve_type: named_curve
  "001d", // x25519
  "20 b806ee489f143b293ea65e2c2589470adb18e872283e9fa8f91dbb504c2a2817", // public<32>
);

/** ClientKeyExchange for PSK with identity "client1". */
const PSK_CKE = hex("0007", "636c69656e7431");

/** ClientKeyExchange for ECDHE_PSK with identity "Client_identity". */
const ECDHE_PSK_CKE = hex(
  "000f 436c69656e745f6964656e74697479", // psk_identity "Client_identity"
  "20 68918edca338208162e58c25b623d680d68edeba7d24ebbb12d9af147edd7778", // ecdh_Yc<32>
);

/** The client's Finished of the PSK handshake (sent encrypted; -msg shows plaintext). */
const FINISHED = hex("aa9eef2ade0334d3dac238f3");

/** A close_notify warning alert as OpenSSL sends it. */
const CLOSE_NOTIFY = hex("01 00");

interface Codec {
  name: string;
  bytes: Uint8Array;
  decode: (b: Uint8Array) => unknown;
  /** Re-encodes a decoded value. */
  encode: (v: never) => Uint8Array;
  /**
   * Prefix lengths that legitimately decode: a hello may end right after
   * compression_methods because its extensions block is optional.
   */
  validPrefixes?: number[];
}

/** Length of a hello up to and including its compression method(s). */
function helloWithoutExtensions(bytes: Uint8Array, extensionsBlock: number): number {
  return bytes.length - 2 - extensionsBlock;
}

const CODECS: Codec[] = [
  {
    name: "ClientHello",
    bytes: CLIENT_HELLO,
    decode: decodeClientHello,
    encode: encodeClientHello,
    validPrefixes: [helloWithoutExtensions(CLIENT_HELLO, 0x52)],
  },
  {
    name: "ClientHello without cookie",
    bytes: CLIENT_HELLO_NO_COOKIE,
    decode: decodeClientHello,
    encode: encodeClientHello,
    validPrefixes: [helloWithoutExtensions(CLIENT_HELLO_NO_COOKIE, 0x3a)],
  },
  {
    name: "HelloVerifyRequest",
    bytes: HELLO_VERIFY_REQUEST,
    decode: decodeHelloVerifyRequest,
    encode: encodeHelloVerifyRequest,
  },
  {
    name: "ServerHello",
    bytes: SERVER_HELLO,
    decode: decodeServerHello,
    encode: encodeServerHello,
    validPrefixes: [helloWithoutExtensions(SERVER_HELLO, 0x0d)],
  },
  {
    name: "PSK ServerKeyExchange",
    bytes: PSK_SKE,
    decode: decodePskServerKeyExchange,
    encode: (v: { identityHint: Uint8Array }) => encodePskServerKeyExchange(v.identityHint),
  },
  {
    name: "ECDHE_PSK ServerKeyExchange",
    bytes: ECDHE_PSK_SKE,
    decode: decodeEcdhePskServerKeyExchange,
    encode: encodeEcdhePskServerKeyExchange,
  },
  {
    name: "PSK ClientKeyExchange",
    bytes: PSK_CKE,
    decode: decodePskClientKeyExchange,
    encode: (v: { identity: Uint8Array }) => encodePskClientKeyExchange(v.identity),
  },
  {
    name: "ECDHE_PSK ClientKeyExchange",
    bytes: ECDHE_PSK_CKE,
    decode: decodeEcdhePskClientKeyExchange,
    encode: encodeEcdhePskClientKeyExchange,
  },
  { name: "Finished", bytes: FINISHED, decode: decodeFinished, encode: encodeFinished },
  {
    name: "Alert",
    bytes: CLOSE_NOTIFY,
    decode: decodeAlert,
    encode: (v: { level: number; description: number }) => encodeAlert(v.level, v.description),
  },
  {
    name: "ServerHelloDone",
    bytes: new Uint8Array(0),
    decode: decodeServerHelloDone,
    encode: () => encodeServerHelloDone(),
  },
];

for (const c of CODECS) {
  Deno.test(`${c.name}: captured bytes re-encode identically`, () => {
    const v = c.decode(c.bytes);
    assert.deepEqual((c.encode as (v: unknown) => Uint8Array)(v), c.bytes);
  });

  Deno.test(`${c.name}: every truncation throws DecodeError`, () => {
    for (let n = 0; n < c.bytes.length; n++) {
      const prefix = c.bytes.slice(0, n);
      if (c.validPrefixes?.includes(n)) {
        // The hello without its optional extensions block.
        assert.deepEqual((c.decode(prefix) as { extensions: unknown[] }).extensions, []);
        continue;
      }
      assert.throws(() => c.decode(prefix), DecodeError, `${c.name} prefix of ${n} bytes`);
    }
  });

  Deno.test(`${c.name}: trailing bytes throw DecodeError`, () => {
    for (const extra of [hex("00"), hex("0000"), hex("ff01020304")]) {
      assert.throws(() => c.decode(concat(c.bytes, extra)), DecodeError);
    }
  });

  Deno.test(`${c.name}: mutated encodings throw only DecodeError`, () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.nat(),
            fc.integer({ min: 0, max: 255 }),
            fc.constantFrom("set", "ins", "del"),
          ),
          { minLength: 1, maxLength: 6 },
        ),
        (edits) => {
          const b = Array.from(c.bytes);
          for (const [at, v, op] of edits) {
            const i = b.length === 0 ? 0 : at % (b.length + (op === "ins" ? 1 : 0));
            if (op === "set" && b.length > 0) b[i] = v;
            else if (op === "ins") b.splice(i, 0, v);
            else if (op === "del") b.splice(i, 1);
          }
          onlyDecodeError(() => c.decode(Uint8Array.from(b)));
        },
      ),
      { numRuns: 500 },
    );
  });

  Deno.test(`${c.name}: arbitrary bytes throw only DecodeError`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => onlyDecodeError(() => c.decode(b))),
      { numRuns: 500 },
    );
  });
}

// --- ClientHello ------------------------------------------------------------

Deno.test("ClientHello: captured fields", () => {
  const m = decodeClientHello(CLIENT_HELLO);
  assert.equal(m.clientVersion, 0xfefd);
  assert.deepEqual(m.random, CLIENT_HELLO.subarray(2, 34));
  assert.equal(m.sessionId.length, 0);
  assert.deepEqual(m.cookie, hex("f2b0c158fbab88f52b126df541c0d6f871d0fd40"));
  assert.deepEqual(m.cipherSuites, [0xccac, 0xc037, 0x00a8, 0xc0a8, 0x00ff]);
  assert.deepEqual(m.compressionMethods, hex("00"));
  assert.deepEqual(m.extensions.map((e) => e.type), [11, 10, 35, 22, 23, 13]);
  assert.deepEqual(m.extensions[1]?.data, hex("000a 001d 0017 001e 0019 0018"));
  assert.equal(m.extensions[5]?.data.length, 42);
});

Deno.test("ClientHello: values are subarrays of the input, not copies", () => {
  const m = decodeClientHello(CLIENT_HELLO);
  for (const v of [m.random, m.sessionId, m.cookie, m.compressionMethods, m.extensions[0]!.data]) {
    assert.equal(v.buffer, CLIENT_HELLO.buffer);
  }
});

Deno.test("ClientHello: unknown cipher suites and extensions are kept", () => {
  const m: ClientHello = {
    clientVersion: 0xfefd,
    random: new Uint8Array(32).fill(7),
    sessionId: new Uint8Array(0),
    cookie: new Uint8Array(0),
    cipherSuites: [0x0a0a, 0x1301, 0x00a8], // GREASE, a TLS 1.3 suite, then one we know
    compressionMethods: hex("00"),
    extensions: [{ type: 0xfafa, data: hex("01") }, { type: 0x4469, data: hex("") }],
  };
  assert.deepEqual(decodeClientHello(encodeClientHello(m)), m);
});

Deno.test("ClientHello: an empty extensions block decodes as no extensions", () => {
  const m = decodeClientHello(
    concat(CLIENT_HELLO.subarray(0, helloWithoutExtensions(CLIENT_HELLO, 0x52)), hex("0000")),
  );
  assert.deepEqual(m.extensions, []);
});

Deno.test("ClientHello: a 255-byte cookie is accepted (RFC 6347 widened it)", () => {
  const m = decodeClientHello(CLIENT_HELLO);
  const long = { ...m, cookie: new Uint8Array(255).fill(0xaa) };
  assert.deepEqual(decodeClientHello(encodeClientHello(long)).cookie, long.cookie);
});

Deno.test("ClientHello: malformed vectors throw DecodeError", () => {
  const base = decodeClientHello(CLIENT_HELLO_NO_COOKIE);
  const bodyWith = (mid: string) => hex("fefd", "00".repeat(32), mid, "01 00"); // no extensions
  assert.doesNotThrow(() => decodeClientHello(bodyWith("00 00 0002 00a8")));
  // session_id over 32 bytes
  assert.throws(() => decodeClientHello(bodyWith("21" + "00".repeat(33) + "00 0002 00a8")), {
    name: "DecodeError",
    message: /session_id: longer than 32 bytes/,
  });
  // cipher_suites of odd length, and empty
  assert.throws(() => decodeClientHello(bodyWith("00 00 0003 00a800")), /odd length/);
  assert.throws(() => decodeClientHello(bodyWith("00 00 0000")), /cipher_suites: empty/);
  // empty compression_methods
  assert.throws(
    () => decodeClientHello(hex("fefd", "00".repeat(32), "00 00 0002 00a8 00")),
    /compression_methods: empty/,
  );
  // an extension whose data runs past the block
  assert.throws(
    () =>
      decodeClientHello(
        concat(encodeClientHello({ ...base, extensions: [] }), hex("0005 0017 0002 00")),
      ),
    DecodeError,
  );
  // a block holding half an extension header
  assert.throws(
    () => decodeClientHello(concat(encodeClientHello({ ...base, extensions: [] }), hex("0001 00"))),
    DecodeError,
  );
});

Deno.test("ClientHello: encoder rejects what the wire cannot carry", () => {
  const m = decodeClientHello(CLIENT_HELLO);
  assert.throws(() => encodeClientHello({ ...m, random: new Uint8Array(31) }), RangeError);
  assert.throws(() => encodeClientHello({ ...m, sessionId: new Uint8Array(33) }), RangeError);
  assert.throws(() => encodeClientHello({ ...m, cookie: new Uint8Array(256) }), RangeError);
  assert.throws(() => encodeClientHello({ ...m, cipherSuites: [] }), RangeError);
  assert.throws(() => encodeClientHello({ ...m, compressionMethods: hex("") }), RangeError);
});

/** Like fc.record, but yields plain objects (fast-check's have a null prototype). */
function record<T extends object>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model).map((o) => ({ ...o }) as T);
}

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const bytes = (minLength: number, maxLength: number) => fc.uint8Array({ minLength, maxLength });
const extension = record({ type: u16, data: bytes(0, 40) });

Deno.test("ClientHello: encode/decode round trip (property)", () => {
  const arb = record({
    clientVersion: u16,
    random: bytes(32, 32),
    sessionId: bytes(0, 32),
    cookie: bytes(0, 255),
    cipherSuites: fc.array(u16, { minLength: 1, maxLength: 40 }),
    compressionMethods: bytes(1, 4),
    extensions: fc.array(extension, { maxLength: 6 }),
  });
  fc.assert(fc.property(arb, (m) => {
    const wire = encodeClientHello(m);
    assert.deepEqual(decodeClientHello(wire), m);
    assert.deepEqual(encodeClientHello(decodeClientHello(wire)), wire);
  }));
});

// --- HelloVerifyRequest ----------------------------------------------------

Deno.test("HelloVerifyRequest: captured fields and round trip (property)", () => {
  const m = decodeHelloVerifyRequest(HELLO_VERIFY_REQUEST);
  assert.equal(m.serverVersion, 0xfeff);
  assert.deepEqual(m.cookie, decodeClientHello(CLIENT_HELLO).cookie);
  fc.assert(fc.property(record({ serverVersion: u16, cookie: bytes(0, 255) }), (v) => {
    assert.deepEqual(decodeHelloVerifyRequest(encodeHelloVerifyRequest(v)), v);
  }));
  assert.throws(
    () => encodeHelloVerifyRequest({ serverVersion: 0xfeff, cookie: new Uint8Array(256) }),
    RangeError,
  );
});

// --- ServerHello ------------------------------------------------------------

Deno.test("ServerHello: captured fields", () => {
  const m = decodeServerHello(SERVER_HELLO);
  assert.equal(m.serverVersion, 0xfefd);
  assert.equal(m.sessionId.length, 0);
  assert.equal(m.cipherSuite, 0xccac);
  assert.equal(m.compressionMethod, 0);
  assert.deepEqual(m.extensions, [
    { type: 0xff01, data: hex("00") },
    { type: 0x0023, data: hex("") },
    { type: 0x0017, data: hex("") },
  ]);
});

Deno.test("ServerHello: no extensions means no extensions block", () => {
  const m: ServerHello = {
    serverVersion: 0xfefd,
    random: new Uint8Array(32),
    sessionId: new Uint8Array(32).fill(1),
    cipherSuite: 0x00a8,
    compressionMethod: 0,
    extensions: [],
  };
  const wire = encodeServerHello(m);
  assert.equal(wire.length, 2 + 32 + 33 + 2 + 1);
  assert.deepEqual(decodeServerHello(wire), m);
  assert.throws(
    () => decodeServerHello(hex("fefd", "00".repeat(32), "21", "00".repeat(33), "00a8 00")),
    DecodeError,
  );
  assert.throws(() => encodeServerHello({ ...m, random: new Uint8Array(33) }), RangeError);
  assert.throws(() => encodeServerHello({ ...m, sessionId: new Uint8Array(33) }), RangeError);
});

Deno.test("ServerHello: encode/decode round trip (property)", () => {
  const arb = record({
    serverVersion: u16,
    random: bytes(32, 32),
    sessionId: bytes(0, 32),
    cipherSuite: u16,
    compressionMethod: u8,
    extensions: fc.array(extension, { maxLength: 6 }),
  });
  fc.assert(fc.property(arb, (m) => {
    assert.deepEqual(decodeServerHello(encodeServerHello(m)), m);
  }));
});

// --- Key exchange -----------------------------------------------------------

Deno.test("ServerKeyExchange: captured fields", () => {
  assert.deepEqual(decodePskServerKeyExchange(PSK_SKE), { identityHint: text("server hint") });
  const e = decodeEcdhePskServerKeyExchange(ECDHE_PSK_SKE);
  assert.equal(e.identityHint.length, 0);
  assert.equal(e.group, 29);
  assert.deepEqual(e.publicKey, ECDHE_PSK_SKE.subarray(6));
});

Deno.test("ServerKeyExchange: ECDHE_PSK rejects other curve types and empty points", () => {
  for (const curveType of ["01", "02", "00", "ff"]) {
    assert.throws(
      () => decodeEcdhePskServerKeyExchange(hex("0000", curveType, "001d 01 00")),
      /curve_type: unsupported curve type/,
    );
  }
  assert.throws(() => decodeEcdhePskServerKeyExchange(hex("0000 03 001d 00")), /public: empty/);
  assert.throws(
    () => encodeEcdhePskServerKeyExchange({ identityHint: hex(""), group: 29, publicKey: hex("") }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeEcdhePskServerKeyExchange({
        identityHint: hex(""),
        group: 29,
        publicKey: new Uint8Array(256),
      }),
    RangeError,
  );
});

Deno.test("ServerKeyExchange: round trips (property)", () => {
  fc.assert(fc.property(bytes(0, 600), (hint) => {
    assert.deepEqual(decodePskServerKeyExchange(encodePskServerKeyExchange(hint)), {
      identityHint: hint,
    });
  }));
  const arb = record({ identityHint: bytes(0, 300), group: u16, publicKey: bytes(1, 255) });
  fc.assert(fc.property(arb, (m) => {
    assert.deepEqual(decodeEcdhePskServerKeyExchange(encodeEcdhePskServerKeyExchange(m)), m);
  }));
});

Deno.test("ClientKeyExchange: captured fields", () => {
  assert.deepEqual(decodePskClientKeyExchange(PSK_CKE), { identity: text("client1") });
  const e = decodeEcdhePskClientKeyExchange(ECDHE_PSK_CKE);
  assert.deepEqual(e.identity, text("Client_identity"));
  assert.deepEqual(e.publicKey, ECDHE_PSK_CKE.subarray(18));
  assert.throws(() => decodeEcdhePskClientKeyExchange(hex("0001 41 00")), /ecdh_Yc: empty/);
  assert.throws(
    () => encodeEcdhePskClientKeyExchange({ identity: hex("41"), publicKey: hex("") }),
    RangeError,
  );
});

Deno.test("ClientKeyExchange: identities up to 2^16-1 bytes are carried (policy is elsewhere)", () => {
  const identity = new Uint8Array(0xffff).fill(0x61);
  assert.deepEqual(
    decodePskClientKeyExchange(encodePskClientKeyExchange(identity)).identity,
    identity,
  );
  assert.throws(() => encodePskClientKeyExchange(new Uint8Array(0x10000)), RangeError);
});

Deno.test("ClientKeyExchange: round trips (property)", () => {
  fc.assert(fc.property(bytes(0, 600), (identity) => {
    assert.deepEqual(decodePskClientKeyExchange(encodePskClientKeyExchange(identity)), {
      identity,
    });
  }));
  const arb = record({ identity: bytes(0, 300), publicKey: bytes(1, 255) });
  fc.assert(fc.property(arb, (m) => {
    assert.deepEqual(decodeEcdhePskClientKeyExchange(encodeEcdhePskClientKeyExchange(m)), m);
  }));
});

// --- Finished, ServerHelloDone ----------------------------------------------

Deno.test("Finished: exactly 12 bytes", () => {
  assert.deepEqual(decodeFinished(FINISHED), FINISHED);
  assert.equal(decodeFinished(FINISHED).buffer, FINISHED.buffer);
  for (const n of [0, 11, 13, 32]) {
    assert.throws(() => decodeFinished(new Uint8Array(n)), DecodeError);
    assert.throws(() => encodeFinished(new Uint8Array(n)), RangeError);
  }
  fc.assert(
    fc.property(bytes(12, 12), (v) => assert.deepEqual(decodeFinished(encodeFinished(v)), v)),
  );
});

Deno.test("ServerHelloDone: empty body only", () => {
  assert.equal(encodeServerHelloDone().length, 0);
  decodeServerHelloDone(new Uint8Array(0));
  assert.throws(() => decodeServerHelloDone(hex("00")), /ServerHelloDone: trailing bytes/);
});

// --- Alerts -----------------------------------------------------------------

Deno.test("Alert: captured close_notify and round trip (property)", () => {
  assert.deepEqual(decodeAlert(CLOSE_NOTIFY), {
    level: AlertLevel.Warning,
    description: AlertDescription.CloseNotify,
  });
  assert.deepEqual(
    encodeAlert(AlertLevel.Fatal, AlertDescription.UnknownPskIdentity),
    hex("02 73"),
  );
  fc.assert(fc.property(u8, u8, (level, description) => {
    assert.deepEqual(decodeAlert(encodeAlert(level, description)), { level, description });
  }));
});

Deno.test("alertName: RFC names, and alert_N for unknown values", () => {
  assert.equal(alertName(AlertDescription.UnknownPskIdentity), "unknown_psk_identity");
  assert.equal(alertName(AlertDescription.CloseNotify), "close_notify");
  assert.equal(alertName(AlertDescription.BadRecordMac), "bad_record_mac");
  assert.equal(alertName(AlertDescription.NoRenegotiation), "no_renegotiation");
  assert.equal(alertName(AlertDescription.UnsupportedExtension), "unsupported_extension");
  assert.equal(alertName(42), "bad_certificate");
  assert.equal(alertName(200), "alert_200");
  // Every named constant has a name of its own in snake_case.
  for (const [key, value] of Object.entries(AlertDescription)) {
    const snake = key.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase());
    assert.equal(alertName(value), snake, key);
  }
});

Deno.test("HandshakeType: RFC 5246 §7.4, RFC 6347 §4.3.2 and RFC 5077 §3.3 code points", () => {
  assert.deepEqual(HandshakeType, {
    HelloRequest: 0,
    ClientHello: 1,
    ServerHello: 2,
    HelloVerifyRequest: 3,
    NewSessionTicket: 4,
    Certificate: 11,
    ServerKeyExchange: 12,
    CertificateRequest: 13,
    ServerHelloDone: 14,
    CertificateVerify: 15,
    ClientKeyExchange: 16,
    Finished: 20,
  });
});
