/**
 * The certificate key exchange's messages (RFC 5246 §7.4.2, RFC 8422 §5.4,
 * §5.7) and the signature_algorithms extension: round trips, the exact wire
 * bytes of a small case, and every truncation refused with a DecodeError.
 */
import assert from "node:assert/strict";
import { DecodeError } from "../../src/codec/reader.ts";
import {
  decodeSignatureAlgorithms,
  encodeSignatureAlgorithms,
  SignatureSchemeCode,
  signatureSchemeOf,
} from "../../src/handshake/extensions.ts";
import {
  decodeCertificate,
  decodeEcdheClientKeyExchange,
  decodeSignedEcdheServerKeyExchange,
  encodeCertificate,
  encodeEcdheClientKeyExchange,
  encodeServerEcdhParams,
  encodeSignedEcdheServerKeyExchange,
  MAX_CHAIN_CERTIFICATES,
} from "../../src/handshake/messages.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

/** Every proper prefix of `bytes` is refused by `decode` with a DecodeError. */
function everyTruncationRefused(bytes: Uint8Array, decode: (b: Uint8Array) => unknown): void {
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decode(bytes.subarray(0, n)), DecodeError, `prefix of ${n} bytes`);
  }
}

Deno.test("Certificate: 24-bit lengths around each certificate and the list, leaf first", () => {
  const chain = [new Uint8Array([0x30, 1, 2]), new Uint8Array([0x30, 9])];
  const body = encodeCertificate(chain);
  assert.equal(hex(body), "00000b" + "000003300102" + "0000023009");
  assert.deepEqual(decodeCertificate(body), chain);
  assert.deepEqual(decodeCertificate(encodeCertificate([])), []);
  everyTruncationRefused(body, decodeCertificate);
  // A trailing byte, an empty certificate, and one too many are refused.
  assert.throws(() => decodeCertificate(new Uint8Array([...body, 0])), DecodeError);
  assert.throws(() => decodeCertificate(new Uint8Array([0, 0, 3, 0, 0, 0])), DecodeError);
  const many = encodeCertificate(
    Array.from({ length: MAX_CHAIN_CERTIFICATES + 1 }, () => new Uint8Array([0x30])),
  );
  assert.throws(() => decodeCertificate(many), /too many certificates/);
});

Deno.test("signed ECDHE ServerKeyExchange: params, algorithm, signature; the signed part is the params as sent", () => {
  const m = {
    group: 23,
    publicKey: new Uint8Array([4, 1, 2]),
    scheme: SignatureSchemeCode.ecdsa_secp256r1_sha256,
    signature: new Uint8Array([0x30, 0xaa]),
  };
  const body = encodeSignedEcdheServerKeyExchange(m);
  assert.equal(hex(body), "030017" + "03040102" + "0403" + "000230aa");
  const decoded = decodeSignedEcdheServerKeyExchange(body);
  assert.deepEqual(
    { ...decoded, params: undefined },
    { ...m, params: undefined },
  );
  assert.deepEqual(decoded.params, encodeServerEcdhParams(23, m.publicKey));
  everyTruncationRefused(body, decodeSignedEcdheServerKeyExchange);
  const explicitCurve = body.slice();
  explicitCurve[0] = 1;
  assert.throws(() => decodeSignedEcdheServerKeyExchange(explicitCurve), /curve type 1/);
});

Deno.test("ECDHE ClientKeyExchange: one opaque8 point, never empty", () => {
  const body = encodeEcdheClientKeyExchange(new Uint8Array([4, 7, 7]));
  assert.equal(hex(body), "03040707");
  assert.deepEqual(decodeEcdheClientKeyExchange(body).publicKey, new Uint8Array([4, 7, 7]));
  everyTruncationRefused(body, decodeEcdheClientKeyExchange);
  assert.throws(() => decodeEcdheClientKeyExchange(new Uint8Array([0])), DecodeError);
});

Deno.test("signature_algorithms: a list of 16-bit pairs, unknown ones kept for the caller to skip", () => {
  const body = encodeSignatureAlgorithms([0x0403, 0x0201, 0x0804]);
  assert.equal(hex(body), "0006" + "0403" + "0201" + "0804");
  assert.deepEqual(decodeSignatureAlgorithms(body), [0x0403, 0x0201, 0x0804]);
  assert.equal(signatureSchemeOf(0x0403), "ecdsa_secp256r1_sha256");
  assert.equal(signatureSchemeOf(0x0201), undefined, "SHA-1 is not ours");
  everyTruncationRefused(body, decodeSignatureAlgorithms);
  assert.throws(() => decodeSignatureAlgorithms(new Uint8Array([0, 0])), /empty/);
  assert.throws(() => decodeSignatureAlgorithms(new Uint8Array([0, 1, 4])), /odd length/);
});

Deno.test("signature scheme code points match RFC 5246 and RFC 8446", () => {
  assert.deepEqual(SignatureSchemeCode, {
    ecdsa_secp256r1_sha256: 0x0403,
    ecdsa_secp384r1_sha384: 0x0503,
    rsa_pss_rsae_sha256: 0x0804,
    rsa_pss_rsae_sha384: 0x0805,
    rsa_pkcs1_sha256: 0x0401,
    rsa_pkcs1_sha384: 0x0501,
  });
});
