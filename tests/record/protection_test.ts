import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import type { CryptoProvider } from "../../src/crypto/provider.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import {
  createProtection,
  innerContent,
  NULL_PROTECTION,
  type RecordKeys,
  type RecordProtection,
} from "../../src/record/protection.ts";
import { CIPHER_SUITES, type CipherSuite, suiteByName } from "../../src/record/suites.ts";
import { concat, hex, seededRandom, toHex } from "../crypto/hex.ts";

const APP = ContentType.ApplicationData;

function keysFor(suite: CipherSuite, random: (n: number) => Uint8Array): RecordKeys {
  return {
    key: random(suite.keyLength),
    fixedIv: random(suite.fixedIvLength),
    macKey: random(suite.macKeyLength),
  };
}

/** Every suite, and the CBC suites once per MAC order. */
const VARIANTS: { suite: CipherSuite; etm: boolean; label: string }[] = CIPHER_SUITES.flatMap((
  suite,
) =>
  suite.cipher.kind === "cbc"
    ? [
      { suite, etm: false, label: `${suite.name} (MAC-then-encrypt)` },
      { suite, etm: true, label: `${suite.name} (encrypt-then-MAC)` },
    ]
    : [{ suite, etm: false, label: suite.name }]
);

function pair(
  suite: CipherSuite,
  etm: boolean,
  seed: number,
  provider: CryptoProvider = nobleProvider,
): [RecordProtection, RecordProtection, RecordKeys] {
  const random = seededRandom(seed);
  const keys = keysFor(suite, random);
  const options = { encryptThenMac: etm, random };
  return [
    createProtection(suite, keys, provider, options),
    createProtection(suite, keys, provider, options),
    keys,
  ];
}

Deno.test("protection: round trip for every suite and MAC order, lengths 0..2^14", () => {
  const random = seededRandom(1);
  for (const { suite, etm, label } of VARIANTS) {
    const [send, receive] = pair(suite, etm, 2);
    let seq = 0;
    for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 100, 1200, 16384]) {
      const plaintext = random(n);
      const fragment = send.protect(APP, DTLS_1_2, 1, seq, plaintext);
      assert.ok(fragment.length <= n + send.overhead, `${label}: ${n} bytes grew past overhead`);
      if (suite.cipher.kind === "aead") assert.equal(fragment.length, n + send.overhead, label);
      assert.deepEqual(
        receive.unprotect(APP, DTLS_1_2, 1, seq, fragment),
        plaintext,
        `${label}: ${n}`,
      );
      seq += 1;
    }
  }
});

Deno.test("protection: protectRecord is the record header followed by what protect returns", () => {
  const random = seededRandom(4);
  // Both providers: each record is sealed in place (sealInto) by a different AEAD.
  for (
    const [{ suite, etm, label }, provider] of VARIANTS.flatMap((v) =>
      [nobleProvider, nodeProvider].map((p) => [v, p] as const)
    )
  ) {
    // Two protections from one seed draw the same CBC IVs, so bytes can be compared.
    const [byFragment] = pair(suite, etm, 5, provider);
    const [byRecord, receive] = pair(suite, etm, 5, provider);
    for (const [epoch, seq, n] of [[1, 0, 0], [1, 1, 33], [2, 0x1234_5678_9abc, 1200]]) {
      const plaintext = random(n!);
      const fragment = byFragment.protect(APP, DTLS_1_2, epoch!, seq!, plaintext);
      const record = byRecord.protectRecord(APP, DTLS_1_2, epoch!, seq!, plaintext);
      assert.deepEqual(
        record,
        encodeRecord(APP, DTLS_1_2, epoch!, seq!, fragment),
        `${label} ${provider.name}`,
      );
      assert.deepEqual(
        receive.unprotect(APP, DTLS_1_2, epoch!, seq!, record.subarray(13)),
        plaintext,
      );
    }
  }
  const plain = new Uint8Array([1, 2, 3]);
  assert.deepEqual(
    NULL_PROTECTION.protectRecord(ContentType.Handshake, DTLS_1_2, 0, 7, plain),
    encodeRecord(ContentType.Handshake, DTLS_1_2, 0, 7, plain),
  );
});

Deno.test("protection: overhead per suite", () => {
  const overhead = (name: string, etm = false) => pair(suiteByName(name), etm, 3)[0].overhead;
  assert.equal(overhead("TLS_PSK_WITH_AES_128_GCM_SHA256"), 24);
  assert.equal(overhead("TLS_PSK_WITH_AES_256_GCM_SHA384"), 24);
  assert.equal(overhead("TLS_PSK_WITH_AES_128_CCM"), 24);
  assert.equal(overhead("TLS_PSK_WITH_AES_128_CCM_8"), 16);
  assert.equal(overhead("TLS_PSK_WITH_CHACHA20_POLY1305_SHA256"), 16);
  assert.equal(overhead("TLS_PSK_WITH_AES_128_CBC_SHA256"), 64);
  assert.equal(overhead("TLS_PSK_WITH_AES_128_CBC_SHA256", true), 64);
  assert.equal(NULL_PROTECTION.overhead, 0);
});

Deno.test("protection: every byte flipped, every truncation and extension gives null, never a throw", () => {
  for (const { suite, etm, label } of VARIANTS) {
    const [send, receive] = pair(suite, etm, 4);
    const plaintext = seededRandom(5)(40);
    const fragment = send.protect(APP, DTLS_1_2, 2, 77, plaintext);
    for (let i = 0; i < fragment.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const bad = fragment.slice();
        bad[i]! ^= mask;
        assert.equal(receive.unprotect(APP, DTLS_1_2, 2, 77, bad), null, `${label}: byte ${i}`);
      }
    }
    for (let n = 0; n < fragment.length; n++) {
      assert.equal(
        receive.unprotect(APP, DTLS_1_2, 2, 77, fragment.subarray(0, n)),
        null,
        `${label}: cut ${n}`,
      );
    }
    for (const extra of [1, 16]) {
      const longer = concat(fragment, new Uint8Array(extra));
      assert.equal(receive.unprotect(APP, DTLS_1_2, 2, 77, longer), null, `${label}: +${extra}`);
    }
    assert.deepEqual(receive.unprotect(APP, DTLS_1_2, 2, 77, fragment), plaintext, label);
  }
});

Deno.test("protection: a record only opens under its own header (epoch, seq, type, version)", () => {
  for (const { suite, etm, label } of VARIANTS) {
    const [send, receive] = pair(suite, etm, 6);
    const plaintext = seededRandom(7)(20);
    const fragment = send.protect(APP, DTLS_1_2, 3, 0x123456789a, plaintext);
    assert.equal(
      receive.unprotect(APP, DTLS_1_2, 4, 0x123456789a, fragment),
      null,
      `${label}: epoch`,
    );
    assert.equal(
      receive.unprotect(APP, DTLS_1_2, 3, 0x123456789b, fragment),
      null,
      `${label}: seq`,
    );
    assert.equal(
      receive.unprotect(APP, DTLS_1_2, 3, 0x023456789a, fragment),
      null,
      `${label}: seq high bits`,
    );
    assert.equal(
      receive.unprotect(ContentType.Handshake, DTLS_1_2, 3, 0x123456789a, fragment),
      null,
      label,
    );
    assert.equal(
      receive.unprotect(APP, 0xfeff, 3, 0x123456789a, fragment),
      null,
      `${label}: version`,
    );
    assert.equal(receive.unprotect(APP, DTLS_1_2, -1, 0x123456789a, fragment), null, label);
    assert.equal(receive.unprotect(APP, DTLS_1_2, 3, 2 ** 48, fragment), null, label);
    assert.deepEqual(receive.unprotect(APP, DTLS_1_2, 3, 0x123456789a, fragment), plaintext, label);
  }
});

Deno.test("protection: another key (the other direction) does not open the record", () => {
  for (const { suite, etm, label } of VARIANTS) {
    const [send] = pair(suite, etm, 8);
    const [, other] = pair(suite, etm, 9);
    const fragment = send.protect(APP, DTLS_1_2, 1, 1, seededRandom(1)(30));
    assert.equal(other.unprotect(APP, DTLS_1_2, 1, 1, fragment), null, label);
  }
});

Deno.test("protection: random garbage of every length up to 200 bytes is null, never a throw", () => {
  const random = seededRandom(10);
  for (const { suite, etm } of VARIANTS) {
    const [, receive] = pair(suite, etm, 11);
    for (let n = 0; n <= 200; n++) {
      assert.equal(receive.unprotect(APP, DTLS_1_2, 1, n, random(n)), null);
    }
  }
});

Deno.test("protection: bad send arguments and bad keys are programming errors", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256");
  const random = seededRandom(12);
  const [send] = pair(suite, false, 13);
  assert.throws(
    () => send.protect(APP, DTLS_1_2, 1, 0, new Uint8Array(16385)),
    /Cannot protect record: plaintext/,
  );
  assert.throws(
    () => send.protect(APP, DTLS_1_2, 1, 2 ** 48, new Uint8Array(1)),
    /Cannot protect record: header/,
  );
  assert.throws(
    () => send.protect(APP, DTLS_1_2, 65536, 0, new Uint8Array(1)),
    /Cannot protect record: header/,
  );
  assert.throws(
    () =>
      createProtection(suite, { ...keysFor(suite, random), key: random(32) }, nobleProvider, {
        encryptThenMac: false,
        random,
      }),
    /Cannot create record protection: TLS_PSK_WITH_AES_128_GCM_SHA256 key of 32 bytes/,
  );
  assert.throws(
    () =>
      createProtection(suite, { ...keysFor(suite, random), fixedIv: random(12) }, nobleProvider, {
        encryptThenMac: false,
        random,
      }),
    /IV of 12 bytes/,
  );
  const cbc = suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256");
  assert.throws(
    () =>
      createProtection(cbc, { ...keysFor(cbc, random), macKey: random(20) }, nobleProvider, {
        encryptThenMac: false,
        random,
      }),
    /MAC key of 20 bytes/,
  );
});

Deno.test("protection: encrypt_then_mac does not change AEAD records (RFC 7366 §3)", () => {
  for (const suite of CIPHER_SUITES.filter((s) => s.cipher.kind === "aead")) {
    const random = seededRandom(14);
    const keys = keysFor(suite, random);
    const a = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
    const b = createProtection(suite, keys, nobleProvider, { encryptThenMac: true, random });
    const plaintext = random(50);
    assert.deepEqual(
      a.protect(APP, DTLS_1_2, 1, 9, plaintext),
      b.protect(APP, DTLS_1_2, 1, 9, plaintext),
      suite.name,
    );
  }
});

Deno.test("protection: NULL_PROTECTION is the identity for epoch 0", () => {
  const plaintext = hex("010203");
  assert.equal(
    NULL_PROTECTION.protect(ContentType.Handshake, DTLS_1_2, 0, 0, plaintext),
    plaintext,
  );
  assert.equal(
    NULL_PROTECTION.unprotect(ContentType.Handshake, DTLS_1_2, 0, 0, plaintext),
    plaintext,
  );
  assert.equal(
    NULL_PROTECTION.unprotect(ContentType.Handshake, DTLS_1_2, 0, 0, new Uint8Array(16385)),
    null,
  );
  assert.throws(() =>
    NULL_PROTECTION.protect(ContentType.Handshake, DTLS_1_2, 0, 0, new Uint8Array(16385))
  );
});

// Known-answer tests: the same record built independently with node:crypto
// from the RFC constructions, compared byte for byte.

/** epoch(2) || seq(6) || type(1) || version(2) || length(2), built by hand. */
function header(type: number, epoch: number, seq: number, length: number): Uint8Array {
  const h = new Uint8Array(13);
  const view = new DataView(h.buffer);
  view.setUint16(0, epoch);
  view.setUint16(2, Math.floor(seq / 2 ** 32));
  view.setUint32(4, seq % 2 ** 32);
  h[8] = type;
  view.setUint16(9, DTLS_1_2);
  view.setUint16(11, length);
  return h;
}

Deno.test("protection: AES-GCM record = explicit(epoch||seq) || GCM(salt||explicit, AAD) (RFC 5288 §3)", () => {
  for (
    const [name, nodeName] of [
      ["TLS_PSK_WITH_AES_128_GCM_SHA256", "aes-128-gcm"],
      ["TLS_PSK_WITH_AES_256_GCM_SHA384", "aes-256-gcm"],
    ] as const
  ) {
    const suite = suiteByName(name);
    const random = seededRandom(15);
    const keys = keysFor(suite, random);
    const send = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
    const plaintext = random(45);
    const epoch = 0x0102, seq = 0x0000a1b2c3d4;
    const explicit = hex("0102" + "0000a1b2c3d4");
    const c = createCipheriv(nodeName, keys.key, concat(keys.fixedIv, explicit));
    c.setAAD(header(APP, epoch, seq, plaintext.length));
    const expected = concat(explicit, c.update(plaintext), c.final(), c.getAuthTag());
    assert.equal(toHex(send.protect(APP, DTLS_1_2, epoch, seq, plaintext)), toHex(expected), name);
  }
});

Deno.test("protection: a GCM record with any explicit nonce on the wire opens (RFC 5288 §3)", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256");
  const random = seededRandom(16);
  const keys = keysFor(suite, random);
  const receive = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
  const plaintext = random(10);
  const explicit = hex("deadbeefcafef00d");
  const c = createCipheriv("aes-128-gcm", keys.key, concat(keys.fixedIv, explicit));
  c.setAAD(header(APP, 5, 6, plaintext.length));
  const fragment = concat(explicit, c.update(plaintext), c.final(), c.getAuthTag());
  assert.deepEqual(receive.unprotect(APP, DTLS_1_2, 5, 6, fragment), plaintext);
});

Deno.test("protection: ChaCha20-Poly1305 nonce = IV XOR (0^32 || epoch || seq) (RFC 7905 §2)", () => {
  for (
    const name of [
      "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
      "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    ]
  ) {
    const suite = suiteByName(name);
    const random = seededRandom(17);
    const keys = keysFor(suite, random);
    const send = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
    const plaintext = random(33);
    const epoch = 0xfedc, seq = 2 ** 48 - 2;
    const nonce = keys.fixedIv.slice();
    const counter = hex("00000000" + "fedc" + "fffffffffffe");
    for (let i = 0; i < 12; i++) nonce[i]! ^= counter[i]!;
    const c = createCipheriv("chacha20-poly1305", keys.key, nonce, { authTagLength: 16 });
    c.setAAD(header(APP, epoch, seq, plaintext.length), { plaintextLength: plaintext.length });
    const expected = concat(c.update(plaintext), c.final(), c.getAuthTag());
    assert.equal(toHex(send.protect(APP, DTLS_1_2, epoch, seq, plaintext)), toHex(expected), name);
  }
});

Deno.test("protection: AES-CCM and CCM_8 records match the raw AEAD with salt||explicit and the AAD (RFC 6655 §3)", () => {
  for (
    const suite of CIPHER_SUITES.filter((s) =>
      s.cipher.kind === "aead" && s.cipher.aead.startsWith("aes-ccm")
    )
  ) {
    if (suite.cipher.kind !== "aead") continue;
    const random = seededRandom(18);
    const keys = keysFor(suite, random);
    const send = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
    const plaintext = random(29);
    const explicit = hex("0003" + "000000000102");
    const raw = nobleProvider.aead(suite.cipher.aead, keys.key);
    const expected = concat(
      explicit,
      raw.seal(concat(keys.fixedIv, explicit), header(APP, 3, 0x102, plaintext.length), plaintext),
    );
    assert.equal(
      toHex(send.protect(APP, DTLS_1_2, 3, 0x102, plaintext)),
      toHex(expected),
      suite.name,
    );
  }
});

function nodeCbc(decrypt: boolean, key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = decrypt
    ? createDecipheriv("aes-128-cbc", key, iv)
    : createCipheriv("aes-128-cbc", key, iv);
  c.setAutoPadding(false);
  return concat(c.update(data), c.final());
}

function hmac256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

Deno.test("protection: CBC MAC-then-encrypt record = IV || CBC(content || HMAC || padding) (RFC 5246 §6.2.3.2)", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256");
  for (const n of [0, 10, 15, 16, 50]) {
    const random = seededRandom(19);
    const keys = keysFor(suite, random);
    const iv = hex("000102030405060708090a0b0c0d0e0f");
    const send = createProtection(suite, keys, nobleProvider, {
      encryptThenMac: false,
      random: () => iv.slice(),
    });
    const plaintext = random(n);
    const mac = hmac256(keys.macKey, header(APP, 1, 42, n), plaintext);
    const padLength = 15 - ((n + 32) % 16);
    const padded = concat(plaintext, mac, new Uint8Array(padLength + 1).fill(padLength));
    const expected = concat(iv, nodeCbc(false, keys.key, iv, padded));
    assert.equal(toHex(send.protect(APP, DTLS_1_2, 1, 42, plaintext)), toHex(expected), `${n}`);
  }
});

Deno.test("protection: CBC encrypt-then-MAC record = IV || CBC(content || padding) || HMAC(hdr || IV || C) (RFC 7366 §3)", () => {
  const suite = suiteByName("TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256");
  for (const n of [0, 15, 16, 50]) {
    const random = seededRandom(20);
    const keys = keysFor(suite, random);
    const iv = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    const send = createProtection(suite, keys, nobleProvider, {
      encryptThenMac: true,
      random: () => iv.slice(),
    });
    const plaintext = random(n);
    const padLength = 15 - (n % 16);
    const ciphertext = nodeCbc(
      false,
      keys.key,
      iv,
      concat(plaintext, new Uint8Array(padLength + 1).fill(padLength)),
    );
    const mac = hmac256(keys.macKey, header(APP, 2, 7, 16 + ciphertext.length), iv, ciphertext);
    const expected = concat(iv, ciphertext, mac);
    assert.equal(toHex(send.protect(APP, DTLS_1_2, 2, 7, plaintext)), toHex(expected), `${n}`);
  }
});

/** A MAC-then-encrypt record with chosen padding bytes, built with node:crypto. */
function cbcRecord(
  keys: RecordKeys,
  content: Uint8Array,
  padding: Uint8Array,
  macOver: Uint8Array = content,
): Uint8Array {
  const iv = hex("00112233445566778899aabbccddeeff");
  const mac = hmac256(keys.macKey, header(APP, 1, 1, macOver.length), macOver);
  return concat(iv, nodeCbc(false, keys.key, iv, concat(content, mac, padding)));
}

Deno.test("protection: CBC MAC-then-encrypt accepts any valid padding up to 255 bytes", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256");
  const random = seededRandom(21);
  const keys = keysFor(suite, random);
  const receive = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
  const content = random(16);
  // content 16 + MAC 32 = 48; padding of p + 1 bytes keeps whole blocks when p % 16 == 15.
  for (const p of [15, 31, 127, 255]) {
    const record = cbcRecord(keys, content, new Uint8Array(p + 1).fill(p));
    assert.deepEqual(receive.unprotect(APP, DTLS_1_2, 1, 1, record), content, `pad ${p}`);
  }
});

Deno.test("protection: CBC MAC-then-encrypt: bad padding and bad MAC are both plain null", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256");
  const random = seededRandom(22);
  const keys = keysFor(suite, random);
  const receive = createProtection(suite, keys, nobleProvider, { encryptThenMac: false, random });
  const content = random(16);
  const open = (r: Uint8Array) => receive.unprotect(APP, DTLS_1_2, 1, 1, r);
  // A padding byte that differs from the length byte, near and far from the end.
  for (const at of [0, 7, 14]) {
    const padding = new Uint8Array(16).fill(15);
    padding[at] = 14;
    assert.equal(open(cbcRecord(keys, content, padding)), null, `pad byte ${at}`);
  }
  // A pad length longer than the record.
  assert.equal(open(cbcRecord(keys, content, new Uint8Array(16).fill(255))), null);
  // A pad length that leaves no room for the MAC: every byte agrees with it, but
  // pad (41) + MAC (32) > 64.
  const iv = random(16);
  assert.equal(open(concat(iv, nodeCbc(false, keys.key, iv, new Uint8Array(64).fill(40)))), null);
  // Valid padding, MAC over other content.
  assert.equal(open(cbcRecord(keys, content, new Uint8Array(16).fill(15), random(16))), null);
  // Valid padding, MAC computed as if the pad length byte were content (the "zero pad" fallback
  // must not turn a bad padding into a good record).
  const tricky = concat(content, new Uint8Array(15).fill(15));
  assert.equal(open(cbcRecord(keys, content, new Uint8Array(16).fill(15), tricky)), null);
  // And the unmodified record opens.
  assert.deepEqual(open(cbcRecord(keys, content, new Uint8Array(16).fill(15))), content);
});

Deno.test("protection: CBC encrypt-then-MAC rejects bad padding even under a good MAC", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256");
  const random = seededRandom(23);
  const keys = keysFor(suite, random);
  const receive = createProtection(suite, keys, nobleProvider, { encryptThenMac: true, random });
  const iv = random(16);
  const seal = (body: Uint8Array) => {
    const c = nodeCbc(false, keys.key, iv, body);
    return concat(iv, c, hmac256(keys.macKey, header(APP, 1, 1, 16 + c.length), iv, c));
  };
  const content = random(8);
  assert.deepEqual(
    receive.unprotect(APP, DTLS_1_2, 1, 1, seal(concat(content, new Uint8Array(8).fill(7)))),
    content,
  );
  const bad = concat(content, new Uint8Array(8).fill(7));
  bad[9] = 6;
  assert.equal(receive.unprotect(APP, DTLS_1_2, 1, 1, seal(bad)), null);
  assert.equal(receive.unprotect(APP, DTLS_1_2, 1, 1, seal(new Uint8Array(16).fill(40))), null);
});

// ---- RFC 9146 Connection ID records ---------------------------------------------

/** RFC 9146 §5's additional data, built here byte by byte from the RFC's list. */
function cidAad(cid: Uint8Array, epoch: number, seq: number, innerLength: number): Uint8Array {
  const h = new Uint8Array(23 + cid.length);
  const view = new DataView(h.buffer);
  h.fill(0xff, 0, 8); // seq_num_placeholder
  h[8] = 25; // tls12_cid
  h[9] = cid.length; // cid_length
  h[10] = 25; // tls12_cid
  view.setUint16(11, DTLS_1_2);
  view.setUint16(13, epoch);
  view.setUint16(15, Math.floor(seq / 2 ** 32));
  view.setUint32(17, seq % 2 ** 32);
  h.set(cid, 21);
  view.setUint16(21 + cid.length, innerLength);
  return h;
}

const CID = hex("0a0b0c0d0e0f");

Deno.test("protection: a CID record is tls12_cid || version || epoch || seq || cid || length || GCM(inner, RFC 9146 AAD)", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256");
  const random = seededRandom(91);
  const keys = keysFor(suite, random);
  const send = createProtection(suite, keys, nobleProvider, {
    encryptThenMac: false,
    random,
    connectionId: CID,
  });
  const plaintext = random(20);
  const epoch = 1, seq = 0x0000000a0b0c;
  const record = send.protectRecord(APP, DTLS_1_2, epoch, seq, plaintext);
  const explicit = hex("0001" + "0000000a0b0c");
  const inner = concat(plaintext, new Uint8Array([APP]));
  const c = createCipheriv("aes-128-gcm", keys.key, concat(keys.fixedIv, explicit));
  c.setAAD(cidAad(CID, epoch, seq, inner.length));
  const fragment = concat(explicit, c.update(inner), c.final(), c.getAuthTag());
  const head = hex("19" + "fefd" + "0001" + "0000000a0b0c" + "0a0b0c0d0e0f");
  const length = new Uint8Array([fragment.length >> 8, fragment.length & 0xff]);
  assert.equal(toHex(record), toHex(concat(head, length, fragment)));
  assert.equal(send.overhead, 8 + 16 + CID.length + 1);
});

Deno.test("protection: a ChaCha20 CID record matches the raw AEAD over the inner plaintext", () => {
  const suite = suiteByName("TLS_PSK_WITH_CHACHA20_POLY1305_SHA256");
  const random = seededRandom(92);
  const keys = keysFor(suite, random);
  const send = createProtection(suite, keys, nobleProvider, {
    encryptThenMac: false,
    random,
    connectionId: CID,
  });
  const plaintext = random(7);
  const epoch = 1, seq = 5;
  const nonce = keys.fixedIv.slice();
  const counter = hex("00000000" + "0001" + "000000000005");
  for (let i = 0; i < 12; i++) nonce[i]! ^= counter[i]!;
  const inner = concat(plaintext, new Uint8Array([ContentType.Alert]));
  const c = createCipheriv("chacha20-poly1305", keys.key, nonce, { authTagLength: 16 });
  c.setAAD(cidAad(CID, epoch, seq, inner.length), { plaintextLength: inner.length });
  const expected = concat(c.update(inner), c.final(), c.getAuthTag());
  const record = send.protectRecord(ContentType.Alert, DTLS_1_2, epoch, seq, plaintext);
  assert.equal(toHex(record.subarray(13 + CID.length)), toHex(expected));
});

Deno.test("protection: CID records open to their inner plaintext under every AEAD suite and provider", () => {
  for (const suite of CIPHER_SUITES.filter((s) => s.cipher.kind === "aead")) {
    for (const provider of [nobleProvider, nodeProvider]) {
      const random = seededRandom(93);
      const keys = keysFor(suite, random);
      const options = { encryptThenMac: false, random, connectionId: CID };
      const send = createProtection(suite, keys, provider, options);
      const receive = createProtection(suite, keys, provider, options);
      const plaintext = random(100);
      const record = send.protectRecord(ContentType.Handshake, DTLS_1_2, 1, 9, plaintext);
      const fragment = record.subarray(13 + CID.length);
      const inner = receive.unprotect(ContentType.Tls12Cid, DTLS_1_2, 1, 9, fragment);
      assert.ok(inner, suite.name);
      assert.equal(toHex(inner), toHex(concat(plaintext, new Uint8Array([ContentType.Handshake]))));
      // Only as a tls12_cid record, and only with its own header.
      assert.equal(receive.unprotect(ContentType.Handshake, DTLS_1_2, 1, 9, fragment), null);
      assert.equal(receive.unprotect(ContentType.Tls12Cid, DTLS_1_2, 1, 10, fragment), null);
      for (let n = 0; n < fragment.length; n++) {
        assert.equal(
          receive.unprotect(ContentType.Tls12Cid, DTLS_1_2, 1, 9, fragment.subarray(0, n)),
          null,
        );
      }
      // Another CID in the additional data: nothing opens.
      const other = createProtection(suite, keys, provider, {
        ...options,
        connectionId: hex("0a0b0c0d0e00"),
      });
      assert.equal(other.unprotect(ContentType.Tls12Cid, DTLS_1_2, 1, 9, fragment), null);
      // Without a CID the same keys do not open it either.
      const plain = createProtection(suite, keys, provider, { encryptThenMac: false, random });
      assert.equal(plain.unprotect(ContentType.Tls12Cid, DTLS_1_2, 1, 9, fragment), null);
    }
  }
});

Deno.test("protection: innerContent takes the last non-zero byte as the type, refuses all-zero", () => {
  assert.deepEqual(innerContent(hex("61626317")), { content: hex("616263"), type: 23 });
  assert.deepEqual(innerContent(hex("6162631500000000")), { content: hex("616263"), type: 21 });
  assert.deepEqual(innerContent(hex("16")), { content: hex(""), type: 22 });
  assert.equal(innerContent(hex("")), undefined);
  assert.equal(innerContent(hex("000000")), undefined);
  assert.equal(innerContent(new Uint8Array(16385 + 1).fill(1)), undefined);
});

Deno.test("protection: a Connection ID on a CBC suite is refused", () => {
  const suite = suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256");
  const random = seededRandom(94);
  assert.throws(
    () =>
      createProtection(suite, keysFor(suite, random), nobleProvider, {
        encryptThenMac: true,
        random,
        connectionId: CID,
      }),
    /AEAD suites only/,
  );
});
