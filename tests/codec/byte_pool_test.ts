import assert from "node:assert/strict";
import { allocateBytes, CHUNK_BYTES } from "../../src/codec/byte_pool.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { ContentType, DTLS_1_2 } from "../../src/record/header.ts";
import { createProtection } from "../../src/record/protection.ts";
import { CIPHER_SUITES } from "../../src/record/suites.ts";
import { seededRandom } from "../crypto/hex.ts";

Deno.test("byte pool: views are zeroed, of the asked length, and never overlap", () => {
  const views: Uint8Array[] = [];
  // Enough for several chunks, with lengths that are not multiples of 8.
  for (let i = 0; i < 3 * CHUNK_BYTES / 40; i++) {
    const view = allocateBytes(1 + (i % 77));
    assert.equal(view.length, 1 + (i % 77));
    assert.ok(view.every((b) => b === 0), "a fresh view is zeroed");
    view.fill((i % 255) + 1);
    views.push(view);
  }
  // Writing every view with its own mark left every other view intact.
  views.forEach((view, i) => assert.ok(view.every((b) => b === (i % 255) + 1), `view ${i}`));
  assert.ok(new Set(views.map((v) => v.buffer)).size >= 3, "chunks roll over");
  assert.ok(views.every((v) => v.byteOffset % 8 === 0), "views start 8-byte aligned");
});

Deno.test("byte pool: a large request gets a buffer of its own", () => {
  const big = allocateBytes(CHUNK_BYTES);
  assert.equal(big.byteOffset, 0);
  assert.equal(big.buffer.byteLength, CHUNK_BYTES);
  const small = allocateBytes(16);
  assert.notEqual(small.buffer, big.buffer);
});

Deno.test("byte pool: records and plaintexts handed out earlier never change afterwards", () => {
  const random = seededRandom(7);
  for (const provider of [nodeProvider, nobleProvider]) {
    for (const suite of CIPHER_SUITES) {
      const keys = {
        key: random(suite.keyLength),
        fixedIv: random(suite.fixedIvLength),
        macKey: random(suite.macKeyLength),
      };
      const protection = createProtection(suite, keys, provider, { encryptThenMac: false, random });
      const payload = random(64);
      const first = protection.protectRecord(ContentType.ApplicationData, DTLS_1_2, 1, 0, payload);
      const firstCopy = first.slice();
      const opened = protection.unprotect(
        ContentType.ApplicationData,
        DTLS_1_2,
        1,
        0,
        first.subarray(13),
      )!;
      assert.deepEqual(opened, payload);
      // Enough later records and plaintexts to pass through several chunks.
      for (let seq = 1; seq < 300; seq++) {
        const record = protection.protectRecord(
          ContentType.ApplicationData,
          DTLS_1_2,
          1,
          seq,
          random(64),
        );
        protection.unprotect(ContentType.ApplicationData, DTLS_1_2, 1, seq, record.subarray(13));
      }
      assert.deepEqual(first, firstCopy, `${suite.name} (${provider.name}): record changed`);
      assert.deepEqual(opened, payload, `${suite.name} (${provider.name}): plaintext changed`);
    }
  }
});
