/**
 * The DTLS 1.3 record number mask (RFC 9147 §4.2.3) from both providers:
 * AES-ECB of the sample (FIPS-197's AES-128 vector) and the ChaCha20
 * keystream with the sample's counter and nonce (RFC 8439 §2.3.2's block),
 * and the two providers agreeing on random samples.
 */
import assert from "node:assert/strict";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { hex, seededRandom, toHex } from "./hex.ts";

const PROVIDERS = [["node", nodeProvider], ["noble", nobleProvider]] as const;

for (const [name, provider] of PROVIDERS) {
  Deno.test(`record number mask (${name}): AES is AES-ECB of the sample (FIPS-197 C.1)`, () => {
    const mask = provider.recordNumberMask(
      "aes",
      hex("000102030405060708090a0b0c0d0e0f"),
      hex("00112233445566778899aabbccddeeff"),
    );
    assert.equal(toHex(mask), "69c4e0d86a7b0430d8cdb78070b4c55a");
  });

  Deno.test(`record number mask (${name}): ChaCha20 takes counter || nonce from the sample (RFC 8439 §2.3.2)`, () => {
    const key = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    // Block counter 1 (little endian), nonce 000000090000004a00000000.
    const sample = hex("01000000" + "000000090000004a00000000");
    assert.equal(
      toHex(provider.recordNumberMask("chacha20", key, sample)),
      "10f1e7e4d13b5915500fdd1fa32071c4",
    );
  });

  Deno.test(`record number mask (${name}): a sample that is not 16 bytes is refused`, () => {
    for (const length of [0, 15, 17]) {
      assert.throws(
        () => provider.recordNumberMask("aes", new Uint8Array(16), new Uint8Array(length)),
        RangeError,
      );
    }
  });
}

Deno.test("record number mask: node and noble agree on every key size and random samples", () => {
  const random = seededRandom(77);
  for (let i = 0; i < 50; i++) {
    const sample = random(16);
    for (const [cipher, keyLength] of [["aes", 16], ["aes", 32], ["chacha20", 32]] as const) {
      const key = random(keyLength);
      assert.deepEqual(
        nodeProvider.recordNumberMask(cipher, key, sample),
        nobleProvider.recordNumberMask(cipher, key, sample),
        `${cipher}-${keyLength * 8}`,
      );
    }
  }
});

Deno.test("record number mask: a masker keyed once gives, record after record, what a fresh mask does", () => {
  const random = seededRandom(78);
  for (const provider of [nodeProvider, nobleProvider]) {
    for (const [cipher, keyLength] of [["aes", 16], ["aes", 32], ["chacha20", 32]] as const) {
      const key = random(keyLength);
      const masker = provider.recordNumberMasker(cipher, key);
      for (let i = 0; i < 20; i++) {
        const sample = random(16);
        assert.deepEqual(
          masker(sample),
          nobleProvider.recordNumberMask(cipher, key, sample),
          `${provider.name} ${cipher}-${keyLength * 8} #${i}`,
        );
      }
      assert.throws(() => masker(new Uint8Array(15)), RangeError);
    }
  }
});
