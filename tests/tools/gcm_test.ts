/**
 * src/crypto/gcm.ts against the GCM specification's test cases, Wycheproof
 * vectors and node:crypto (an independent implementation), plus the
 * authentication properties: any single flipped bit fails to open.
 */
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv } from "node:crypto";
import { aesGcm } from "../../tools/gcm.ts";
import { concat, hex, seededRandom, toHex } from "../crypto/hex.ts";

/** Seals with node:crypto. */
function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const c = createCipheriv(key.length === 16 ? "aes-128-gcm" : "aes-256-gcm", key, nonce, {
    authTagLength: 16,
  });
  c.setAAD(aad);
  return concat(c.update(pt), c.final(), c.getAuthTag());
}

/** Opens with node:crypto, or null. */
function nodeOpen(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  sealed: Uint8Array,
): Uint8Array | null {
  const n = sealed.length - 16;
  const d = createDecipheriv(key.length === 16 ? "aes-128-gcm" : "aes-256-gcm", key, nonce, {
    authTagLength: 16,
  });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(n));
  try {
    return concat(d.update(sealed.subarray(0, n)), d.final());
  } catch {
    return null;
  }
}

/** `b` copied to an odd offset in a larger buffer: no alignment to lean on. */
function misaligned(b: Uint8Array, offset: number): Uint8Array {
  const buf = new Uint8Array(b.length + offset + 3);
  buf.set(b, offset);
  return buf.subarray(offset, offset + b.length);
}

const P4 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const K = "feffe9928665731c6d6a8f9467308308";
const IV = "cafebabefacedbaddecaf888";
const AAD = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

/** The GCM specification's test cases 1-4 (AES-128) and 13-16 (AES-256), 96-bit IVs. */
const SPEC = [
  {
    tc: 1,
    key: "00".repeat(16),
    iv: "00".repeat(12),
    aad: "",
    pt: "",
    ct: "",
    tag: "58e2fccefa7e3061367f1d57a4e7455a",
  },
  {
    tc: 2,
    key: "00".repeat(16),
    iv: "00".repeat(12),
    aad: "",
    pt: "00".repeat(16),
    ct: "0388dace60b6a392f328c2b971b2fe78",
    tag: "ab6e47d42cec13bdf53a67b21257bddf",
  },
  {
    tc: 3,
    key: K,
    iv: IV,
    aad: "",
    pt: P4 + "1aafd255",
    ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
    tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
  },
  {
    tc: 4,
    key: K,
    iv: IV,
    aad: AAD,
    pt: P4,
    ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
    tag: "5bc94fbc3221a5db94fae95ae7121a47",
  },
  {
    tc: 13,
    key: "00".repeat(32),
    iv: "00".repeat(12),
    aad: "",
    pt: "",
    ct: "",
    tag: "530f8afbc74536b9a963b4f1c4cb738b",
  },
  {
    tc: 14,
    key: "00".repeat(32),
    iv: "00".repeat(12),
    aad: "",
    pt: "00".repeat(16),
    ct: "cea7403d4d606b6e074ec5d3baf39d18",
    tag: "d0d1c8a799996bf0265b98b5d48ab919",
  },
  {
    tc: 15,
    key: K + K,
    iv: IV,
    aad: "",
    pt: P4 + "1aafd255",
    ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
    tag: "b094dac5d93471bdec1a502270e3cc6c",
  },
  {
    tc: 16,
    key: K + K,
    iv: IV,
    aad: AAD,
    pt: P4,
    ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
    tag: "76fc6ece0f4e1768cddf8853bb2d551b",
  },
];

Deno.test("gcm: the GCM specification's test cases 1-4 and 13-16", () => {
  for (const v of SPEC) {
    const aead = aesGcm(hex(v.key));
    assert.equal(aead.tagLength, 16);
    const sealed = aead.seal(hex(v.iv), hex(v.aad), hex(v.pt));
    assert.equal(toHex(sealed), v.ct + v.tag, `test case ${v.tc}`);
    const opened = aead.open(hex(v.iv), hex(v.aad), sealed);
    assert.ok(opened, `test case ${v.tc}`);
    assert.equal(toHex(opened), v.pt, `test case ${v.tc}`);
  }
});

/** Wycheproof aes_gcm_test.json, 96-bit IV, 128-bit key and tag: [tcId, key, iv, aad, msg, ct, tag, valid]. */
const WYCHEPROOF: [number, string, string, string, string, string, string, boolean][] = [
  [
    1,
    "5b9604fe14eadba931b0ccf34843dab9",
    "028318abc1824029138141a2",
    "",
    "001d0c231287c1182784554ca3a21908",
    "26073cc1d851beff176384dc9896d5ff",
    "0a3ea7a5487cb5f7d70fb6c58d038554",
    true,
  ],
  [
    2,
    "5b9604fe14eadba931b0ccf34843dab9",
    "921d2507fa8007b7bd067d34",
    "00112233445566778899aabbccddeeff",
    "001d0c231287c1182784554ca3a21908",
    "49d8b9783e911913d87094d1f63cc765",
    "1e348ba07cca2cf04c618cb4d43a5b92",
    true,
  ],
  [
    3,
    "aa023d0478dcb2b2312498293d9a9129",
    "0432bc49ac34412081288127",
    "aac39231129872a2",
    "2035af313d1346ab00154fea78322105",
    "eea945f3d0f98cc0fbab472a0cf24e87",
    "4bb9b4812519dadf9e1232016d068133",
    true,
  ],
  [
    4,
    "bedcfb5a011ebc84600fcb296c15af0d",
    "438a547a94ea88dce46c6c85",
    "",
    "",
    "",
    "960247ba5cde02e41a313c4c0136edc3",
    true,
  ],
  [
    5,
    "384ea416ac3c2f51a76e7d8226346d4e",
    "b30c084727ad1c592ac21d12",
    "",
    "35",
    "54",
    "7c1e4ae88bb27e5638343cb9fd3f6337",
    true,
  ],
  [
    6,
    "cae31cd9f55526eb038241fc44cac1e5",
    "b5e006ded553110e6dc56529",
    "",
    "d10989f2c52e94ad",
    "a036ead03193903f",
    "3b626940e0e9f0cbea8e18c437fd6011",
    true,
  ],
  [
    7,
    "dd6197cd63c963919cf0c273ef6b28bf",
    "ecb0c42f7000ef0e6f95f24d",
    "",
    "4dcc1485365866e25ac3f2ca6aba97",
    "8a9992388e735f80ee18f4a63c10ad",
    "1486a91cccf92c9a5b00f7b0e034891c",
    true,
  ],
  [
    9,
    "c15ed227dd2e237ecd087eaaaad19ea4",
    "965ff6643116ac1443a2dec7",
    "",
    "fee62fde973fe025ad6b322dcdf3c63fc7",
    "0de51fe4f7f2d1f0f917569f5c6d1b009c",
    "6cd8521422c0177e83ef1b7a845d97db",
    true,
  ],
  [
    10,
    "a8ee11b26d7ceb7f17eaa1e4b83a2cf6",
    "fbbc04fd6e025b7193eb57f6",
    "",
    "c08f085e6a9e0ef3636280c11ecfadf0c1e72919ffc17eaf",
    "7cd9f4e4f365704fff3b9900aa93ba54b672bac554275650",
    "f4eb193241226db017b32ec38ca47217",
    true,
  ],
  [
    11,
    "28ff3def08179311e2734c6d1c4e2871",
    "32bcb9b569e3b852d37c766a",
    "c3",
    "dfc61a20df8505b53e3cd59f25770d5018add3d6",
    "f58d453212c2c8a436e9283672f579f119122978",
    "5901131d0760c8715901d881fdfd3bc0",
    true,
  ],
  [
    12,
    "e63a43216c08867210e248859eb5e99c",
    "9c3a4263d983456658aad4b1",
    "834afdc5c737186b",
    "b14da56b0462dc05b871fc815273ff4810f92f4b",
    "bf864616c2347509ca9b10446379b9bdbb3b8f64",
    "a97d25b490390b53c5db91f6ee2a15b8",
    true,
  ],
  [
    13,
    "38449890234eb8afab0bbf82e2385454",
    "33e90658416e7c1a7c005f11",
    "4020855c66ac4595058395f367201c4c",
    "f762776bf83163b323ca63a6b3adeac1e1357262",
    "a6f2ef3c7ef74a126dd2d5f6673964e27d5b34b6",
    "b8bbdc4f5014bc752c8b4e9b87f650a3",
    true,
  ],
  [
    14,
    "6a68671dfe323d419894381f85eb63fd",
    "9f0d85b605711f34cd2a35ba",
    "76eb5f147250fa3c12bff0a6e3934a0b16860cf11646773b",
    "0fc67899c3f1bbe196d90f1eca3797389230aa37",
    "bd64802cfebaeb487d3a8f76ce943a37b3472dd5",
    "fce9a5b530c7d7af718be1ec0ae9ed4d",
    true,
  ],
  [
    15,
    "e12260fcd355a51a0d01bb1f6fa538c2",
    "5dfc37366f5688275147d3f9",
    "",
    "d902deeab175c008329a33bfaccd5c0eb3a6a152a1510e7db04fa0aff7ce4288" +
    "530db6a80fa7fea582aa7d46d7d56e708d2bb0c5edd3d26648d336c3620ea55e",
    "d33bf6722fc29384fad75f990248b9528e0959aa67ec66869dc3996c67a2d559" +
    "e7d77ce5955f8cad2a4df5fdc3acccafa7bc0def53d848111256903e5add0420",
    "8bc833de510863b4b432c3cbf45aa7cc",
    true,
  ],
  [
    18,
    "c4b03435b91fc52e09eff27e4dc3fb42",
    "5046e7e08f0747e1efccb09e",
    "75fc9078b488e9503dcb568c882c9eec24d80b04f0958c82aac8484f025c9043" +
    "4148db8e9bfe29c7e071b797457cb1695a5e5a6317b83690ba0538fb11e325ca",
    "8e887b224e8b89c82e9a641cf579e6879e1111c7",
    "b6786812574a254eb43b1cb1d1753564c6b520e9",
    "ad8c09610d508f3d0f03cc523c0d5fcc",
    true,
  ],
  [
    21,
    "00112233445566778899aabbccddeeff",
    "000000000000000000000000",
    "",
    "ebd4a3e10cf6d41c50aeae007563b072",
    "f62d84d649e56bc8cfedc5d74a51e2f7",
    "ffffffffffffffffffffffffffffffff",
    true,
  ],
  [
    22,
    "00112233445566778899aabbccddeeff",
    "ffffffffffffffffffffffff",
    "",
    "d593c4d8224f1b100c35e4f6c4006543",
    "431f31e6840931fd95f94bf88296ff69",
    "00000000000000000000000000000000",
    true,
  ],
  // Flipped bits 0, 1, 7 and 8 of the tag.
  ...[
    "d9847dbc326a06e988c77ad3863e6083",
    "da847dbc326a06e988c77ad3863e6083",
    "58847dbc326a06e988c77ad3863e6083",
    "d8857dbc326a06e988c77ad3863e6083",
  ].map((
    tag,
    i,
  ): [number, string, string, string, string, string, string, boolean] => [
    23 + i,
    "000102030405060708090a0b0c0d0e0f",
    "505152535455565758595a5b",
    "",
    "202122232425262728292a2b2c2d2e2f",
    "eb156d081ed6b6b55f4612f021d87b39",
    tag,
    false,
  ]),
];

Deno.test("gcm: Wycheproof aes_gcm_test.json vectors (96-bit IV, 128-bit tag)", () => {
  for (const [tcId, key, iv, aad, msg, ct, tag, valid] of WYCHEPROOF) {
    const aead = aesGcm(hex(key));
    const opened = aead.open(hex(iv), hex(aad), hex(ct + tag));
    if (valid) {
      assert.equal(toHex(aead.seal(hex(iv), hex(aad), hex(msg))), ct + tag, `tcId ${tcId}`);
      assert.ok(opened, `tcId ${tcId}`);
      assert.equal(toHex(opened), msg, `tcId ${tcId}`);
    } else {
      assert.equal(opened, null, `tcId ${tcId}`);
    }
  }
});

Deno.test("gcm: agrees with node:crypto on 4,000 random keys, nonces, AAD and lengths", () => {
  const random = seededRandom(0x6c3);
  const lengths = random(8000);
  for (let i = 0; i < 4000; i++) {
    const key = random(i % 2 === 0 ? 16 : 32);
    const nonce = random(12);
    // Plaintext 0..2000 bytes (every residue mod 16 many times), AAD 0..63
    // bytes and now and then a long one.
    const n = ((lengths[2 * i]! << 8) | lengths[2 * i + 1]!) % 2001;
    const aadLength = i % 50 === 0 ? 300 + (i % 17) : lengths[2 * i]! % 64;
    const aad = random(aadLength);
    const pt = random(n);
    const aead = aesGcm(key);
    const expected = nodeSeal(key, nonce, aad, pt);
    // Inputs at odd offsets, as records sit inside datagrams.
    const sealed = aead.seal(misaligned(nonce, 1), misaligned(aad, 3), misaligned(pt, i % 7));
    assert.equal(
      toHex(sealed),
      toHex(expected),
      `case ${i}: key ${key.length}, aad ${aadLength}, n ${n}`,
    );
    const opened = aead.open(nonce, aad, misaligned(sealed, 5));
    assert.ok(opened, `case ${i}`);
    assert.equal(toHex(opened), toHex(pt), `case ${i}`);
    assert.deepEqual(nodeOpen(key, nonce, aad, sealed), pt, `case ${i}`);
  }
});

Deno.test("gcm: long messages cross 256-block counter runs exactly as node:crypto does", () => {
  const random = seededRandom(0x6c4);
  for (const keyLength of [16, 32]) {
    const key = random(keyLength);
    const aead = aesGcm(key);
    for (const n of [4063, 4064, 4065, 4080, 4096, 8191, 12345, 16384, 16384 + 256 + 7]) {
      const nonce = random(12);
      const aad = random(13);
      const pt = random(n);
      const sealed = aead.seal(nonce, aad, pt);
      assert.equal(toHex(sealed), toHex(nodeSeal(key, nonce, aad, pt)), `${keyLength} ${n}`);
      assert.deepEqual(aead.open(nonce, aad, sealed), pt, `${keyLength} ${n}`);
    }
  }
});

Deno.test("gcm: every single-bit flip of ciphertext, tag, AAD or nonce fails to open", () => {
  const random = seededRandom(0x6c5);
  for (
    const [keyLength, n, aadLength] of [[16, 0, 13], [16, 1, 13], [32, 17, 13], [16, 64, 0], [
      32,
      33,
      29,
    ]]
  ) {
    const aead = aesGcm(random(keyLength!));
    const nonce = random(12);
    const aad = random(aadLength!);
    const pt = random(n!);
    const sealed = aead.seal(nonce, aad, pt);
    assert.deepEqual(aead.open(nonce, aad, sealed), pt);
    let checked = 0;
    for (let bit = 0; bit < 8 * sealed.length; bit++) {
      const bad = sealed.slice();
      bad[bit >>> 3]! ^= 1 << (bit & 7);
      assert.equal(aead.open(nonce, aad, bad), null, `sealed bit ${bit}`);
      checked++;
    }
    for (let bit = 0; bit < 8 * aad.length; bit++) {
      const bad = aad.slice();
      bad[bit >>> 3]! ^= 1 << (bit & 7);
      assert.equal(aead.open(nonce, bad, sealed), null, `aad bit ${bit}`);
      checked++;
    }
    for (let bit = 0; bit < 96; bit++) {
      const bad = nonce.slice();
      bad[bit >>> 3]! ^= 1 << (bit & 7);
      assert.equal(aead.open(bad, aad, sealed), null, `nonce bit ${bit}`);
      checked++;
    }
    assert.equal(checked, 8 * (sealed.length + aad.length) + 96);
    // An extra or a missing AAD byte, and a truncated or extended record.
    assert.equal(aead.open(nonce, concat(aad, new Uint8Array(1)), sealed), null);
    if (aad.length > 0) assert.equal(aead.open(nonce, aad.subarray(1), sealed), null);
    assert.equal(aead.open(nonce, aad, sealed.subarray(0, sealed.length - 1)), null);
    assert.equal(aead.open(nonce, aad, concat(sealed, new Uint8Array(1))), null);
    // Still opens after all those failures: no state leaks between calls.
    assert.deepEqual(aead.open(nonce, aad, sealed), pt);
  }
});

Deno.test("gcm: inputs are never written, and one keyed instance serves interleaved calls", () => {
  const random = seededRandom(0x6c6);
  const key = random(16);
  const a = aesGcm(key);
  const b = aesGcm(key);
  const nonce = random(12);
  const aad = random(13);
  const pt = random(100);
  const ptCopy = pt.slice();
  const sealed = a.seal(nonce, aad, pt);
  const sealedCopy = sealed.slice();
  assert.deepEqual(pt, ptCopy);
  const other = a.seal(random(12), random(40), random(333));
  assert.deepEqual(b.open(nonce, aad, sealed), pt);
  assert.deepEqual(sealed, sealedCopy);
  assert.ok(a.open(nonce, aad, sealed));
  assert.equal(a.open(nonce, aad, other), null);
  assert.deepEqual(a.seal(nonce, aad, pt), sealed);
});

Deno.test("gcm: bad keys throw up front; bad nonces throw on seal and give null on open", () => {
  for (const n of [0, 15, 17, 24, 31, 33]) {
    assert.throws(() => aesGcm(new Uint8Array(n)), /Cannot create AES-GCM: key of \d+ bytes/);
  }
  const aead = aesGcm(new Uint8Array(16));
  assert.throws(() => aead.seal(new Uint8Array(8), new Uint8Array(0), new Uint8Array(1)), /nonce/);
  assert.throws(() => aead.seal(new Uint8Array(16), new Uint8Array(0), new Uint8Array(1)), /nonce/);
  const sealed = aead.seal(new Uint8Array(12), new Uint8Array(0), new Uint8Array(5));
  assert.equal(aead.open(new Uint8Array(8), new Uint8Array(0), sealed), null);
  for (let n = 0; n < 16; n++) {
    assert.equal(aead.open(new Uint8Array(12), new Uint8Array(0), new Uint8Array(n)), null);
  }
});
