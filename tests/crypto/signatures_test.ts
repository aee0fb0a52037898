/**
 * Handshake signatures: each scheme signs and verifies in both providers,
 * ECDSA signatures check out with an independent implementation
 * (@noble/curves), and every malformed or misfitting input is a false, not
 * a throw.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { p256, p384 } from "@noble/curves/nist.js";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import type { SignatureScheme } from "../../src/crypto/provider.ts";

function keyPair(type: "ec" | "rsa", param: string | number) {
  const pair = type === "ec"
    ? generateKeyPairSync("ec", { namedCurve: param as string })
    : generateKeyPairSync("rsa", { modulusLength: param as number });
  return {
    pkcs8: new Uint8Array(pair.privateKey.export({ type: "pkcs8", format: "der" })),
    spki: new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" })),
    // The uncompressed point closes an EC SubjectPublicKeyInfo.
    raw: type === "ec"
      ? new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" })).slice(
        param === "P-256" ? -65 : -97,
      )
      : undefined,
  };
}

const data = new TextEncoder().encode("client_random || server_random || ServerECDHParams");
const P256 = keyPair("ec", "P-256");
const P384 = keyPair("ec", "P-384");
const RSA = keyPair("rsa", 2048);

for (const provider of [nodeProvider, nobleProvider]) {
  Deno.test(`${provider.name}: every scheme of each key signs, and verifies only its own data`, () => {
    const cases: [typeof P256, readonly SignatureScheme[]][] = [
      // TLS 1.2 binds a hash to ECDSA, not a curve: either key signs with either.
      [P256, ["ecdsa_secp256r1_sha256", "ecdsa_secp384r1_sha384"]],
      [P384, ["ecdsa_secp384r1_sha384", "ecdsa_secp256r1_sha256"]],
      [RSA, ["rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pkcs1_sha256", "rsa_pkcs1_sha384"]],
    ];
    for (const [pair, schemes] of cases) {
      const key = provider.signingKey(pair.pkcs8);
      assert.deepEqual(key.schemes, schemes);
      for (const scheme of schemes) {
        const signature = key.sign(scheme, data);
        assert.equal(provider.verify(pair.spki, scheme, data, signature), true, scheme);
        const other = data.slice();
        other[0]! ^= 1;
        assert.equal(provider.verify(pair.spki, scheme, other, signature), false, scheme);
        const bent = signature.slice();
        bent[bent.length - 1]! ^= 1;
        assert.equal(provider.verify(pair.spki, scheme, data, bent), false, scheme);
      }
    }
  });
}

Deno.test("ECDSA signatures are DER and check out with @noble/curves, on P-256 and P-384", () => {
  for (
    const [pair, scheme, curve] of [
      [P256, "ecdsa_secp256r1_sha256", p256],
      [P384, "ecdsa_secp384r1_sha384", p384],
    ] as const
  ) {
    const signature = nodeProvider.signingKey(pair.pkcs8).sign(scheme, data);
    assert.equal(signature[0], 0x30, "a DER SEQUENCE");
    // OpenSSL does not normalise s to the lower half: neither does TLS.
    assert.equal(
      curve.verify(signature, data, pair.raw!, { format: "der", lowS: false }),
      true,
      scheme,
    );
  }
});

Deno.test("a key that does not fit the scheme, or is not a key, verifies nothing and never throws", () => {
  const ecdsa = nodeProvider.signingKey(P256.pkcs8).sign("ecdsa_secp256r1_sha256", data);
  const rsa = nodeProvider.signingKey(RSA.pkcs8).sign("rsa_pss_rsae_sha256", data);
  assert.equal(nodeProvider.verify(RSA.spki, "ecdsa_secp256r1_sha256", data, ecdsa), false);
  assert.equal(nodeProvider.verify(P256.spki, "rsa_pss_rsae_sha256", data, rsa), false);
  assert.equal(nodeProvider.verify(new Uint8Array(10), "rsa_pss_rsae_sha256", data, rsa), false);
  assert.equal(
    nodeProvider.verify(P256.spki, "ecdsa_secp256r1_sha256", data, new Uint8Array(0)),
    false,
  );
  // PKCS#1 v1.5 is not PSS: a signature of one is not one of the other.
  assert.equal(nodeProvider.verify(RSA.spki, "rsa_pkcs1_sha256", data, rsa), false);
});

Deno.test("an ECDSA signature with r or s out of range is refused", () => {
  const n = p256.Point.CURVE().n;
  const der = (r: bigint, s: bigint) => {
    const int = (v: bigint) => {
      let hex = v.toString(16);
      if (hex.length % 2) hex = "0" + hex;
      let bytes = hex.match(/../g)!.map((h) => parseInt(h, 16));
      if (bytes[0]! & 0x80) bytes = [0, ...bytes];
      return [0x02, bytes.length, ...bytes];
    };
    const body = [...int(r), ...int(s)];
    return new Uint8Array([0x30, body.length, ...body]);
  };
  const good = p256.Signature.fromBytes(
    nodeProvider.signingKey(P256.pkcs8).sign("ecdsa_secp256r1_sha256", data),
    "der",
  );
  assert.equal(
    nodeProvider.verify(P256.spki, "ecdsa_secp256r1_sha256", data, der(good.r, good.s)),
    true,
  );
  for (
    const [r, s] of [[0n, good.s], [good.r, 0n], [good.r + n, good.s], [good.r, good.s + n], [
      n,
      good.s,
    ]]
  ) {
    assert.equal(
      nodeProvider.verify(P256.spki, "ecdsa_secp256r1_sha256", data, der(r!, s!)),
      false,
    );
  }
});

Deno.test("keys we cannot sign with are refused by name: RSA under 2048 bits, another curve, another type", () => {
  assert.throws(
    () => nodeProvider.signingKey(keyPair("rsa", 1024).pkcs8),
    /RSA key of 1024 bits: at least 2048/,
  );
  assert.throws(
    () => nodeProvider.signingKey(keyPair("ec", "secp256k1").pkcs8),
    /only P-256 and P-384/,
  );
  const ed = new Uint8Array(
    generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "der" }),
  );
  assert.throws(() => nodeProvider.signingKey(ed), /Cannot use ed25519 key: only EC and RSA/);
  assert.throws(() => nodeProvider.signingKey(new Uint8Array(5)), /Cannot read private key/);
  // A signature of a 1024-bit key is not taken either.
  assert.equal(
    nodeProvider.verify(
      keyPair("rsa", 1024).spki,
      "rsa_pss_rsae_sha256",
      data,
      new Uint8Array(128),
    ),
    false,
  );
});
