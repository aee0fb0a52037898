import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../../src/codec/reader.ts";
import {
  decodeEcPointFormats,
  decodeRenegotiationInfo,
  decodeSupportedGroups,
  EC_POINT_FORMAT_UNCOMPRESSED,
  encodeEcPointFormats,
  encodeRenegotiationInfo,
  encodeSupportedGroups,
  ExtensionType,
  findExtension,
  hasDuplicateExtensions,
  isEmptyExtension,
  NamedGroup,
  TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
} from "../../src/handshake/extensions.ts";
import type { Extension } from "../../src/handshake/messages.ts";

function hex(...parts: string[]): Uint8Array {
  const s = parts.join("").replace(/\s+/g, "");
  assert.equal(s.length % 2, 0, "odd hex");
  return Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function onlyDecodeError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
  }
}

// extension_data as OpenSSL 3.0 sent it in a DTLS 1.2 ClientHello / ServerHello
// (see messages_test.ts for the whole messages).

/** supported_groups: x25519, secp256r1, x448, secp521r1, secp384r1. */
const SUPPORTED_GROUPS = hex("000a", "001d 0017 001e 0019 0018");
/** ec_point_formats: uncompressed, ansiX962_compressed_prime, ansiX962_compressed_char2. */
const EC_POINT_FORMATS = hex("03", "00 01 02");
/** renegotiation_info on an initial handshake: an empty renegotiated_connection. */
const RENEGOTIATION_INFO = hex("00");

const CODECS = [
  {
    name: "supported_groups",
    bytes: SUPPORTED_GROUPS,
    decode: decodeSupportedGroups,
    encode: (v: number[]) => encodeSupportedGroups(v),
  },
  {
    name: "ec_point_formats",
    bytes: EC_POINT_FORMATS,
    decode: decodeEcPointFormats,
    encode: (v: number[]) => encodeEcPointFormats(v),
  },
  {
    name: "renegotiation_info",
    bytes: RENEGOTIATION_INFO,
    decode: decodeRenegotiationInfo,
    encode: (v: Uint8Array) => encodeRenegotiationInfo(v),
  },
] as const;

for (const c of CODECS) {
  Deno.test(`${c.name}: captured bytes re-encode identically`, () => {
    const encode = c.encode as (v: unknown) => Uint8Array;
    assert.deepEqual(encode(c.decode(c.bytes)), c.bytes);
  });

  Deno.test(`${c.name}: every truncation throws DecodeError`, () => {
    for (let n = 0; n < c.bytes.length; n++) {
      assert.throws(() => c.decode(c.bytes.slice(0, n)), DecodeError, `prefix of ${n} bytes`);
    }
  });

  Deno.test(`${c.name}: trailing bytes throw DecodeError`, () => {
    const longer = new Uint8Array(c.bytes.length + 1);
    longer.set(c.bytes);
    assert.throws(() => c.decode(longer), DecodeError);
  });

  Deno.test(`${c.name}: arbitrary bytes throw only DecodeError`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (b) => onlyDecodeError(() => c.decode(b))),
      { numRuns: 1000 },
    );
  });
}

Deno.test("supported_groups: captured values; unknown groups are kept", () => {
  assert.deepEqual(decodeSupportedGroups(SUPPORTED_GROUPS), [
    NamedGroup.x25519,
    NamedGroup.secp256r1,
    30,
    25,
    24,
  ]);
  assert.throws(() => decodeSupportedGroups(hex("0000")), /supported_groups: empty/);
  assert.throws(() => decodeSupportedGroups(hex("0003 001d00")), /supported_groups: odd length/);
  assert.throws(() => encodeSupportedGroups([]), RangeError);
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 100 }),
      (groups) => assert.deepEqual(decodeSupportedGroups(encodeSupportedGroups(groups)), groups),
    ),
  );
});

Deno.test("ec_point_formats: captured values", () => {
  assert.deepEqual(decodeEcPointFormats(EC_POINT_FORMATS), [EC_POINT_FORMAT_UNCOMPRESSED, 1, 2]);
  assert.throws(() => decodeEcPointFormats(hex("00")), /ec_point_formats: empty/);
  assert.throws(() => encodeEcPointFormats([]), RangeError);
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xff }), { minLength: 1, maxLength: 255 }),
      (formats) => assert.deepEqual(decodeEcPointFormats(encodeEcPointFormats(formats)), formats),
    ),
  );
});

Deno.test("renegotiation_info: empty on an initial handshake; round trip", () => {
  assert.equal(decodeRenegotiationInfo(RENEGOTIATION_INFO).length, 0);
  assert.deepEqual(encodeRenegotiationInfo(new Uint8Array(0)), RENEGOTIATION_INFO);
  assert.throws(() => encodeRenegotiationInfo(new Uint8Array(256)), RangeError);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 255 }), (v) => {
      assert.deepEqual(decodeRenegotiationInfo(encodeRenegotiationInfo(v)), v);
    }),
  );
});

Deno.test("findExtension: the first extension of a type", () => {
  const exts: Extension[] = [
    { type: ExtensionType.ExtendedMasterSecret, data: hex("") },
    { type: ExtensionType.RenegotiationInfo, data: hex("00") },
  ];
  assert.equal(findExtension(exts, 0xff01), exts[1]);
  assert.equal(findExtension(exts, ExtensionType.ServerName), undefined);
  assert.equal(findExtension([], 23), undefined);
});

Deno.test("hasDuplicateExtensions: RFC 5246 §7.4.1.4 allows one of each type", () => {
  const e = (type: number): Extension => ({ type, data: hex("") });
  assert.equal(hasDuplicateExtensions([]), false);
  assert.equal(hasDuplicateExtensions([e(0), e(10), e(11), e(0xff01)]), false);
  assert.equal(hasDuplicateExtensions([e(23), e(10), e(23)]), true);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 20 }), (types) => {
      assert.equal(hasDuplicateExtensions(types.map(e)), new Set(types).size !== types.length);
    }),
  );
});

Deno.test("isEmptyExtension: EMS and EtM carry no data", () => {
  assert.equal(isEmptyExtension({ type: ExtensionType.ExtendedMasterSecret, data: hex("") }), true);
  assert.equal(isEmptyExtension({ type: ExtensionType.EncryptThenMac, data: hex("00") }), false);
});

Deno.test("code points match the IANA registry", () => {
  assert.deepEqual(ExtensionType, {
    ServerName: 0,
    SupportedGroups: 10,
    EcPointFormats: 11,
    SignatureAlgorithms: 13,
    ClientCertificateType: 19,
    ServerCertificateType: 20,
    EncryptThenMac: 22,
    ExtendedMasterSecret: 23,
    SessionTicket: 35,
    ConnectionId: 54,
    RenegotiationInfo: 0xff01,
  });
  assert.deepEqual(NamedGroup, { x25519: 29, secp256r1: 23, secp384r1: 24 });
  assert.equal(TLS_EMPTY_RENEGOTIATION_INFO_SCSV, 0x00ff);
});
