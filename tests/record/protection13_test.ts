/**
 * DTLS 1.3 record protection (RFC 9147 §4): every AEAD suite round trips
 * with every header shape; a record is built byte for byte as the RFC says
 * (nonce = IV XOR the 64-bit sequence number, the header as additional
 * data, then the sequence number masked with the ciphertext's first 16
 * bytes), checked here against node:crypto by hand; every flipped bit and
 * every cut fails to open; the full sequence number comes back from its low
 * bits.
 */
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import type { AeadName, CryptoProvider } from "../../src/crypto/provider.ts";
import { ContentType } from "../../src/record/header.ts";
import { Dtls13Protection, type HeaderShape } from "../../src/record/protection13.ts";
import { encodeUnifiedHeader, parseUnifiedRecord } from "../../src/record/unified_header.ts";
import { concat, seededRandom, toHex } from "../crypto/hex.ts";

const SUITES: { name: string; aead: AeadName; keyLength: number; sn: "aes" | "chacha20" }[] = [
  { name: "TLS_AES_128_GCM_SHA256", aead: "aes-gcm", keyLength: 16, sn: "aes" },
  { name: "TLS_AES_256_GCM_SHA384", aead: "aes-gcm", keyLength: 32, sn: "aes" },
  {
    name: "TLS_CHACHA20_POLY1305_SHA256",
    aead: "chacha20-poly1305",
    keyLength: 32,
    sn: "chacha20",
  },
  { name: "TLS_AES_128_CCM_SHA256", aead: "aes-ccm", keyLength: 16, sn: "aes" },
  { name: "TLS_AES_128_CCM_8_SHA256", aead: "aes-ccm-8", keyLength: 16, sn: "aes" },
];

function pair(
  suite: (typeof SUITES)[number],
  provider: CryptoProvider,
  seed: number,
): [Dtls13Protection, Dtls13Protection, { key: Uint8Array; iv: Uint8Array; snKey: Uint8Array }] {
  const random = seededRandom(seed);
  const keys = { key: random(suite.keyLength), iv: random(12), snKey: random(suite.keyLength) };
  const make = () =>
    new Dtls13Protection(provider, provider.aead(suite.aead, keys.key), keys, suite.sn);
  return [make(), make(), keys];
}

const SHAPES: HeaderShape[] = [
  { seqLength: 1, withLength: false },
  { seqLength: 2, withLength: true },
  { seqLength: 2, withLength: false, cid: new Uint8Array([9, 8, 7]) },
  { seqLength: 1, withLength: true, cid: new Uint8Array([1]) },
];

for (
  const [providerName, provider] of [["node", nodeProvider], ["noble", nobleProvider]] as const
) {
  for (const suite of SUITES) {
    Deno.test(`protection13 (${providerName}): ${suite.name} round trips with every header shape`, () => {
      const [send, receive] = pair(suite, provider, 1);
      const random = seededRandom(2);
      for (const shape of SHAPES) {
        for (const length of [0, 1, 5, 100]) {
          const content = random(length);
          const seq = 0x10203 + length;
          const record = send.seal(ContentType.ApplicationData, content, 3, seq, shape);
          const parsed = parseUnifiedRecord(record, 0, shape.cid?.length ?? 0);
          assert.ok(parsed, `${suite.name} ${JSON.stringify(shape)} ${length}`);
          assert.equal(parsed.end, record.length);
          assert.equal(parsed.record.epochBits, 3);
          assert.ok(parsed.record.encrypted.length >= 16, "long enough to mask");
          const opened = receive.open(parsed.record, seq);
          assert.ok(opened, `${suite.name} ${JSON.stringify(shape)} ${length}`);
          assert.equal(opened.type, ContentType.ApplicationData);
          assert.deepEqual(opened.content, content);
          assert.equal(opened.seq, seq);
        }
      }
    });

    Deno.test(`protection13 (${providerName}): ${suite.name}: every flipped bit and every cut fails to open`, () => {
      const [send, receive] = pair(suite, provider, 3);
      const shape: HeaderShape = { seqLength: 2, withLength: true };
      const record = send.seal(ContentType.Handshake, new Uint8Array([1, 2, 3]), 2, 77, shape);
      for (let i = 0; i < record.length; i++) {
        for (const bit of [0x01, 0x80]) {
          const flipped = record.slice();
          flipped[i]! ^= bit;
          const parsed = parseUnifiedRecord(flipped, 0, 0);
          if (parsed === undefined) continue;
          assert.equal(receive.open(parsed.record, 77), null, `byte ${i} bit ${bit}`);
        }
      }
      const whole = parseUnifiedRecord(record, 0, 0)!.record;
      for (let n = 0; n < whole.encrypted.length; n++) {
        assert.equal(
          receive.open({ ...whole, encrypted: whole.encrypted.subarray(0, n) }, 77),
          null,
        );
      }
    });
  }
}

Deno.test("protection13: a record is IV XOR seq as nonce, the clear header as AAD, then the masked seq (checked by hand)", () => {
  const suite = SUITES[0]!;
  const [send, , keys] = pair(suite, nodeProvider, 5);
  const seq = 0x0000_0102_0304;
  const content = new TextEncoder().encode("ping");
  const record = send.seal(ContentType.ApplicationData, content, 1, seq, {
    seqLength: 2,
    withLength: true,
  });
  // By hand: the inner plaintext, the nonce and the AEAD.
  // No padding: with a 16-byte tag the ciphertext is long enough to mask.
  const inner = concat(content, new Uint8Array([ContentType.ApplicationData]));
  const nonce = keys.iv.slice();
  const seqBytes = [0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04];
  for (let i = 0; i < 8; i++) nonce[4 + i]! ^= seqBytes[i]!;
  const header = encodeUnifiedHeader({ epoch: 1, seq, seqLength: 2, length: inner.length + 16 });
  const cipher = createCipheriv("aes-128-gcm", keys.key, nonce);
  cipher.setAAD(header);
  const ciphertext = concat(cipher.update(inner), cipher.final(), cipher.getAuthTag());
  // The mask: AES-ECB of the first 16 ciphertext bytes under the sn key.
  const ecb = createCipheriv("aes-128-ecb", keys.snKey, null);
  ecb.setAutoPadding(false);
  const mask = concat(ecb.update(ciphertext.subarray(0, 16)), ecb.final());
  const masked = header.slice();
  masked[1]! ^= mask[0]!;
  masked[2]! ^= mask[1]!;
  assert.equal(toHex(record), toHex(concat(masked, ciphertext)));
});

Deno.test("protection13: the full sequence number comes back from one byte, and a wrong guess does not open", () => {
  const [send, receive] = pair(SUITES[2]!, nobleProvider, 6);
  const record = send.seal(ContentType.Alert, new Uint8Array([1, 0]), 2, 0x1ff, {
    seqLength: 1,
    withLength: false,
  });
  const parsed = parseUnifiedRecord(record, 0, 0)!.record;
  assert.equal(receive.open(parsed, 0x1fe)?.seq, 0x1ff);
  assert.equal(receive.open(parsed, 0x205)?.seq, 0x1ff);
  // Expecting 0x300: the low byte 0xff reads as 0x2ff, whose nonce is another.
  assert.equal(receive.open(parsed, 0x300), null);
});

Deno.test("protection13: CCM_8's short records are padded to make a mask sample", () => {
  const [send, receive] = pair(SUITES[4]!, nodeProvider, 7);
  const record = send.seal(ContentType.Handshake, new Uint8Array(0), 2, 1, {
    seqLength: 2,
    withLength: true,
  });
  const parsed = parseUnifiedRecord(record, 0, 0)!.record;
  assert.equal(parsed.encrypted.length, 16);
  const opened = receive.open(parsed, 1);
  assert.equal(opened?.type, ContentType.Handshake);
  assert.equal(opened?.content.length, 0);
});
