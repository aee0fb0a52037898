/**
 * Findings of the adversarial review of 43cebbb (raw public keys, RFC 7250:
 * --client-keys read by `loadPublicKeys`). Each test FAILS on the code as
 * reviewed. Pure: keys made with node:crypto, no peer programs.
 */
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { Buffer } from "node:buffer";
import { CertificateError, loadPublicKeys } from "../../src/pki/server_certificate.ts";

function pem(der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{64}/g, "$&\n");
  return `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`;
}

function spki(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ type: "spki", format: "der" }));
}

/** The SubjectPublicKeyInfo of a P-256 key with its point compressed (RFC 5480 §2.2 allows it). */
function compressedSpki(key: KeyObject): Uint8Array {
  const der = spki(key);
  // The uncompressed point is the last 65 bytes: 04 || X || Y.
  const x = der.subarray(der.length - 64, der.length - 32);
  const odd = (der[der.length - 1]! & 1) === 1;
  // SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 }, BIT STRING (34: 00 02|03 X) }
  const algorithm = der.subarray(2, 2 + 2 + der[3]!);
  const bits = new Uint8Array([0x03, 34, 0x00, odd ? 0x03 : 0x02, ...x]);
  return new Uint8Array([0x30, algorithm.length + bits.length, ...algorithm, ...bits]);
}

// ---- an entry is compared as written, not as the key it is -------------------------------

Deno.test("review raw keys: --client-keys entries are normalised (a compressed P-256 key matches the SubjectPublicKeyInfo clients send)", () => {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const compressed = compressedSpki(publicKey);
  // Valid, and the same key (node:crypto reads it back to the same export).
  const reread = createPublicKey({ key: Buffer.from(compressed), format: "der", type: "spki" });
  assert.deepEqual(spki(reread), spki(publicKey));
  const [loaded] = loadPublicKeys(pem(compressed), "--client-keys test");
  // What a client sends (GnuTLS, OpenSSL, Go, node:crypto all export
  // uncompressed), and what the X.509 path reports as spkiSha256 (it
  // exports the leaf's key): compared byte for byte, the entry must be this.
  assert.deepEqual(
    loaded,
    spki(publicKey),
    "the entry is kept compressed: the key's holder is refused with bad_certificate, and the same key has another spkiSha256 than as X.509",
  );
});

// ---- keys that can never authenticate are loaded in silence ------------------------------

for (
  const [name, make] of [
    ["Ed25519", () => generateKeyPairSync("ed25519").publicKey],
    ["X25519", () => generateKeyPairSync("x25519").publicKey],
    ["RSA-1024", () => generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey],
    ["EC P-521", () => generateKeyPairSync("ec", { namedCurve: "secp521r1" }).publicKey],
  ] as const
) {
  Deno.test(`review raw keys: a ${name} key in --client-keys is refused at start (no CertificateVerify can ever verify with it)`, () => {
    // signatures.ts `fits`: only EC P-256/P-384 and RSA >= 2048 verify. This
    // key is accepted, a client holding it completes ECDHE and is then
    // refused with decrypt_error, and the operator is told nothing: --key
    // refuses such a key at start ("only EC and RSA", "at least 2048").
    assert.throws(
      () => loadPublicKeys(pem(spki(make())), "--client-keys test"),
      CertificateError,
      `a ${name} public key was loaded as a client key`,
    );
  });
}
