import assert from "node:assert/strict";
import { nodeProvider } from "../../src/crypto/node.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { providerVectorTests } from "./provider_vectors.ts";
import { seededRandom } from "./hex.ts";
import { createProtection } from "../../src/record/protection.ts";
import { CIPHER_SUITES } from "../../src/record/suites.ts";

Deno.test("node: provider name", () => {
  assert.equal(nodeProvider.name, "node");
});

providerVectorTests(nodeProvider);

Deno.test("node: key shares interoperate with noble's and derive the same key from the same draw", () => {
  for (const group of ["x25519", "secp256r1", "secp384r1"] as const) {
    const a = nodeProvider.keyShare(group, seededRandom(31));
    const b = nobleProvider.keyShare(group, seededRandom(31));
    assert.deepEqual(a.publicKey, b.publicKey, group);
    const c = nobleProvider.keyShare(group, seededRandom(32));
    assert.deepEqual(a.sharedSecret(c.publicKey), c.sharedSecret(a.publicKey), group);
  }
});

Deno.test("node: AEADs interoperate with noble's in both directions", () => {
  const random = seededRandom(33);
  for (
    const [name, keyLength] of [["aes-gcm", 16], ["aes-gcm", 32], [
      "chacha20-poly1305",
      32,
    ]] as const
  ) {
    const key = random(keyLength);
    const node = nodeProvider.aead(name, key);
    const noble = nobleProvider.aead(name, key);
    for (const n of [0, 1, 15, 16, 17, 64, 1200]) {
      const nonce = random(12);
      const aad = random(13);
      const pt = random(n);
      assert.deepEqual(noble.open(nonce, aad, node.seal(nonce, aad, pt)), pt, `${name} ${n}`);
      assert.deepEqual(node.open(nonce, aad, noble.seal(nonce, aad, pt)), pt, `${name} ${n}`);
    }
  }
});

Deno.test("node: records of every suite protected by one provider unprotect with the other", () => {
  const random = seededRandom(34);
  for (const suite of CIPHER_SUITES) {
    const keys = {
      key: random(suite.keyLength),
      fixedIv: random(suite.fixedIvLength),
      macKey: random(suite.macKeyLength),
    };
    const options = { encryptThenMac: true, random };
    const node = createProtection(suite, keys, nodeProvider, options);
    const noble = createProtection(suite, keys, nobleProvider, options);
    for (const n of [0, 64, 1200]) {
      const pt = random(n);
      const a = node.protect(23, 0xfefd, 1, n, pt);
      assert.deepEqual(noble.unprotect(23, 0xfefd, 1, n, a), pt, `${suite.name} ${n}`);
      const b = noble.protect(23, 0xfefd, 1, n + 1, pt);
      assert.deepEqual(node.unprotect(23, 0xfefd, 1, n + 1, b), pt, `${suite.name} ${n}`);
    }
  }
});
