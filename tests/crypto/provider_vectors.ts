/**
 * The vector suite every crypto provider must pass: RFC, NIST and Wycheproof
 * vectors for each primitive, cross-checks against node:crypto, and the
 * "never throws on bad input" contract of AEAD open. Registered per provider
 * by tests/crypto/noble_test.ts and tests/crypto/node_provider_test.ts.
 */
import assert from "node:assert/strict";
import { createCipheriv, createHmac } from "node:crypto";
import type { CryptoProvider } from "../../src/crypto/provider.ts";
import { concat, hex, seededRandom, toHex } from "./hex.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** A random source that hands out `b` once (to pin a private key to a published one). */
function fixed(b: Uint8Array): (n: number) => Uint8Array {
  return (n: number) => {
    assert.equal(n, b.length);
    return b.slice();
  };
}

/** Registers the whole vector suite for provider `p`, each test named after it. */
export function providerVectorTests(p: CryptoProvider): void {
  Deno.test(`${p.name}: SHA-256 and SHA-384 of "abc" (FIPS 180-2 examples)`, () => {
    assert.equal(
      toHex(p.hash("sha256", utf8("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(
      toHex(p.hash("sha384", utf8("abc"))),
      "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed" +
        "8086072ba1e7cc2358baeca134c825a7",
    );
  });

  /** RFC 4231 §4.2, §4.3, §4.7 (test cases 1, 2 and 6). */
  const RFC4231 = [
    {
      key: hex("0b".repeat(20)),
      data: utf8("Hi There"),
      sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      sha384: "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c" +
        "faea9ea9076ede7f4af152e8b2fa9cb6",
    },
    {
      key: utf8("Jefe"),
      data: utf8("what do ya want for nothing?"),
      sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      sha384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e" +
        "8e2240ca5e69e2c78b3239ecfab21649",
    },
    {
      key: hex("aa".repeat(131)),
      data: utf8("Test Using Larger Than Block-Size Key - Hash Key First"),
      sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      sha384: "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6" +
        "0c2ef6ab4030fe8296248df163f44952",
    },
  ];

  Deno.test(`${p.name}: HMAC-SHA256/384 RFC 4231 vectors, keyed state reused across calls`, () => {
    for (const v of RFC4231) {
      for (const hash of ["sha256", "sha384"] as const) {
        const mac = p.hmac(hash, v.key);
        assert.equal(mac.length, hash === "sha256" ? 32 : 48);
        // Twice on the same keyed object, and split into parts: same answer.
        assert.equal(toHex(mac.compute(v.data)), v[hash]);
        assert.equal(toHex(mac.compute(v.data.subarray(0, 3), v.data.subarray(3))), v[hash]);
        assert.equal(toHex(mac.compute()), createHmac(hash, v.key).digest("hex"));
        assert.equal(toHex(mac.compute(v.data)), v[hash]);
      }
    }
  });

  Deno.test(`${p.name}: HMAC agrees with node:crypto over many lengths`, () => {
    const random = seededRandom(1);
    for (const hash of ["sha256", "sha384"] as const) {
      const key = random(32);
      const mac = p.hmac(hash, key);
      for (let n = 0; n < 300; n += 7) {
        const data = random(n);
        assert.equal(toHex(mac.compute(data)), createHmac(hash, key).update(data).digest("hex"));
      }
    }
  });

  /** The GCM specification's test cases 1-4 and 16 (McGrew and Viega), as NIST republished them. */
  const GCM_P =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
  const GCM = [
    {
      key: "00".repeat(16),
      iv: "00".repeat(12),
      aad: "",
      pt: "",
      ct: "",
      tag: "58e2fccefa7e3061367f1d57a4e7455a",
    },
    {
      key: "00".repeat(16),
      iv: "00".repeat(12),
      aad: "",
      pt: "00".repeat(16),
      ct: "0388dace60b6a392f328c2b971b2fe78",
      tag: "ab6e47d42cec13bdf53a67b21257bddf",
    },
    {
      key: "feffe9928665731c6d6a8f9467308308",
      iv: "cafebabefacedbaddecaf888",
      aad: "",
      pt: GCM_P + "1aafd255",
      ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
      tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
    },
    {
      key: "feffe9928665731c6d6a8f9467308308",
      iv: "cafebabefacedbaddecaf888",
      aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      pt: GCM_P,
      ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
      tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    {
      key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      iv: "cafebabefacedbaddecaf888",
      aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      pt: GCM_P,
      ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
  ];

  Deno.test(`${p.name}: AES-GCM test cases 1-4 and 16`, () => {
    for (const v of GCM) {
      const aead = p.aead("aes-gcm", hex(v.key));
      assert.equal(aead.tagLength, 16);
      const sealed = aead.seal(hex(v.iv), hex(v.aad), hex(v.pt));
      assert.equal(toHex(sealed), v.ct + v.tag);
      const opened = aead.open(hex(v.iv), hex(v.aad), sealed);
      assert.ok(opened);
      assert.equal(toHex(opened), v.pt);
    }
  });

  Deno.test(`${p.name}: ChaCha20-Poly1305 RFC 8439 §2.8.2`, () => {
    const aead = p.aead(
      "chacha20-poly1305",
      hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
    );
    const nonce = hex("070000004041424344454647");
    const aad = hex("50515253c0c1c2c3c4c5c6c7");
    const plaintext = utf8(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const expected = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
      "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
      "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
      "3ff4def08e4b7a9de576d26586cec64b6116" + "1ae10b594f09e26a7e902ecbd0600691";
    const sealed = aead.seal(nonce, aad, plaintext);
    assert.equal(toHex(sealed), expected);
    assert.deepEqual(aead.open(nonce, aad, sealed), plaintext);
  });

  Deno.test(`${p.name}: AES-CCM and AES-CCM-8 through the provider`, () => {
    // Wycheproof aes_ccm_test.json tcId 11 (16-byte tag, 12-byte nonce).
    const ccm = p.aead("aes-ccm", hex("9415f925bcb41dc25e86c826dbc8bf68"));
    assert.equal(ccm.tagLength, 16);
    assert.equal(
      toHex(
        ccm.seal(
          hex("bdffaa763b916ff0ee3f3ce4"),
          hex("705d676cd8a94451"),
          hex("feb36167eafc02c8e2bd6e13817686ba"),
        ),
      ),
      "08db327a88be7b48f430fd7bfccdf502b7c249f810adacf99abded1f3b9130f2",
    );
    // NIST SP 800-38C example 3 (8-byte tag, 12-byte nonce).
    const ccm8 = p.aead("aes-ccm-8", hex("404142434445464748494a4b4c4d4e4f"));
    assert.equal(ccm8.tagLength, 8);
    assert.equal(
      toHex(
        ccm8.seal(
          hex("101112131415161718191a1b"),
          hex("000102030405060708090a0b0c0d0e0f10111213"),
          hex("202122232425262728292a2b2c2d2e2f3031323334353637"),
        ),
      ),
      "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951",
    );
  });

  Deno.test(`${p.name}: every AEAD's open returns null (never throws) on bad input`, () => {
    const random = seededRandom(9);
    const cases = [
      ["aes-gcm", 16],
      ["aes-gcm", 32],
      ["chacha20-poly1305", 32],
      ["aes-ccm", 16],
      ["aes-ccm", 32],
      ["aes-ccm-8", 16],
    ] as const;
    for (const [name, keyLength] of cases) {
      const aead = p.aead(name, random(keyLength));
      const nonce = random(12);
      const aad = random(13);
      const plaintext = random(33);
      const sealed = aead.seal(nonce, aad, plaintext);
      assert.deepEqual(aead.open(nonce, aad, sealed), plaintext, name);
      for (let i = 0; i < sealed.length; i++) {
        const bad = sealed.slice();
        bad[i]! ^= 0x80;
        assert.equal(aead.open(nonce, aad, bad), null, `${name} byte ${i}`);
      }
      for (let n = 0; n < sealed.length; n++) {
        assert.equal(
          aead.open(nonce, aad, sealed.subarray(0, n)),
          null,
          `${name} truncated to ${n}`,
        );
      }
      assert.equal(aead.open(nonce, random(13), sealed), null);
      assert.equal(aead.open(random(12), aad, sealed), null);
      assert.equal(aead.open(nonce.subarray(0, 8), aad, sealed), null);
      assert.equal(aead.open(new Uint8Array(0), aad, new Uint8Array(0)), null);
    }
  });

  Deno.test(`${p.name}: AEAD key lengths are checked up front`, () => {
    assert.throws(
      () => p.aead("aes-gcm", new Uint8Array(20)),
      /Cannot create AES-GCM: key of 20 bytes/,
    );
    assert.throws(
      () => p.aead("chacha20-poly1305", new Uint8Array(16)),
      /Cannot create ChaCha20-Poly1305/,
    );
    assert.throws(() => p.aead("aes-ccm", new Uint8Array(8)), /Cannot create AES-CCM/);
    assert.throws(() => p.cbc(new Uint8Array(10)), /Cannot create AES-CBC/);
  });

  /** Seals with node:crypto, an independent implementation. */
  function nodeSeal(
    name: "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305",
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
  ): Uint8Array {
    const c = name === "chacha20-poly1305"
      ? createCipheriv(name, key, nonce, { authTagLength: 16 })
      : createCipheriv(name, key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: plaintext.length });
    return concat(c.update(plaintext), c.final(), c.getAuthTag());
  }

  Deno.test(`${p.name}: AES-GCM and ChaCha20-Poly1305 agree with node:crypto`, () => {
    const random = seededRandom(21);
    for (
      const [name, nodeName, keyLength] of [
        ["aes-gcm", "aes-128-gcm", 16],
        ["aes-gcm", "aes-256-gcm", 32],
        ["chacha20-poly1305", "chacha20-poly1305", 32],
      ] as const
    ) {
      const key = random(keyLength);
      const aead = p.aead(name, key);
      // Both sides of the node provider's size switch for ChaCha20-Poly1305 (768 bytes).
      for (const n of [0, 1, 16, 100, 767, 768, 1400]) {
        const nonce = random(12);
        const aad = random(13);
        const plaintext = random(n);
        const expected = nodeSeal(nodeName, key, nonce, aad, plaintext);
        assert.equal(toHex(aead.seal(nonce, aad, plaintext)), toHex(expected), `${nodeName} ${n}`);
        assert.deepEqual(aead.open(nonce, aad, expected), plaintext, `open ${nodeName} ${n}`);
        expected[n >>> 1]! ^= 0x80;
        assert.equal(aead.open(nonce, aad, expected), null, `tampered ${nodeName} ${n}`);
      }
    }
  });

  Deno.test(`${p.name}: sealInto writes what seal returns, at an offset, and nothing else`, () => {
    const random = seededRandom(22);
    for (
      const [name, keyLength] of [
        ["aes-gcm", 16],
        ["aes-gcm", 32],
        ["chacha20-poly1305", 32],
        ["aes-ccm", 16],
        ["aes-ccm-8", 32],
      ] as const
    ) {
      const aead = p.aead(name, random(keyLength));
      for (const n of [0, 1, 64, 767, 768, 1200]) {
        const nonce = random(12), aad = random(13), plaintext = random(n);
        const sealed = aead.seal(nonce, aad, plaintext);
        const out = new Uint8Array(21 + sealed.length + 5).fill(0xa5);
        aead.sealInto(nonce, aad, plaintext, out, 21);
        assert.equal(toHex(out.subarray(21, 21 + sealed.length)), toHex(sealed), `${name} ${n}`);
        assert.ok(out.subarray(0, 21).every((b) => b === 0xa5), `${name} ${n}: bytes before`);
        assert.ok(out.subarray(21 + sealed.length).every((b) => b === 0xa5), `${name} ${n}: after`);
        assert.throws(
          () => aead.sealInto(nonce, aad, plaintext, out, out.length - sealed.length + 1),
          RangeError,
        );
      }
    }
  });

  /** NIST SP 800-38A F.2.1 / F.2.5 (CBC-AES128 / CBC-AES256 encrypt). */
  const SP800_38A_P = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51" +
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

  Deno.test(`${p.name}: AES-CBC NIST SP 800-38A F.2.1 and F.2.5`, () => {
    const iv = hex("000102030405060708090a0b0c0d0e0f");
    for (
      const [key, ct] of [
        [
          "2b7e151628aed2a6abf7158809cf4f3c",
          "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2" +
          "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
        ],
        [
          "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
          "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d" +
          "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        ],
      ]
    ) {
      const cbc = p.cbc(hex(key!));
      assert.equal(toHex(cbc.encrypt(iv, hex(SP800_38A_P))), ct);
      assert.equal(toHex(cbc.decrypt(iv, hex(ct!))), SP800_38A_P);
      // Keyed once: a second use gives the same.
      assert.equal(toHex(cbc.encrypt(iv, hex(SP800_38A_P))), ct);
    }
  });

  Deno.test(`${p.name}: AES-CBC agrees with node:crypto on unaligned input; rejects partial blocks`, () => {
    const random = seededRandom(4);
    const key = random(16);
    const cbc = p.cbc(key);
    const iv = random(16);
    const data = concat(new Uint8Array(1), random(64)).subarray(1);
    const c = createCipheriv("aes-128-cbc", key, iv);
    c.setAutoPadding(false);
    const expected = concat(c.update(data), c.final());
    assert.deepEqual(cbc.encrypt(iv, data), expected);
    assert.deepEqual(cbc.decrypt(iv, expected), data);
    assert.throws(() => cbc.encrypt(iv, new Uint8Array(15)), /Cannot encrypt AES-CBC/);
    assert.throws(() => cbc.decrypt(iv, new Uint8Array(17)), /Cannot decrypt AES-CBC/);
    assert.throws(() => cbc.decrypt(new Uint8Array(8), new Uint8Array(16)), /IV of 8 bytes/);
  });

  Deno.test(`${p.name}: X25519 RFC 7748 §6.1`, () => {
    const alicePriv = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const bobPriv = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const alice = p.keyShare("x25519", fixed(alicePriv));
    const bob = p.keyShare("x25519", fixed(bobPriv));
    assert.equal(
      toHex(alice.publicKey),
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    assert.equal(
      toHex(bob.publicKey),
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    );
    const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert.equal(toHex(alice.sharedSecret(bob.publicKey)!), shared);
    assert.equal(toHex(bob.sharedSecret(alice.publicKey)!), shared);
  });

  Deno.test(`${p.name}: X25519 rejects low-order and malformed peer values with null`, () => {
    const share = p.keyShare("x25519", seededRandom(2));
    // u = 0 and u = 1 are small-order points: the shared secret would be all zero.
    const zero = new Uint8Array(32);
    const one = new Uint8Array(32);
    one[0] = 1;
    assert.equal(share.sharedSecret(zero), null);
    assert.equal(share.sharedSecret(one), null);
    assert.equal(share.sharedSecret(new Uint8Array(31)), null);
    assert.equal(share.sharedSecret(new Uint8Array(33)), null);
    assert.equal(share.sharedSecret(new Uint8Array(0)), null);
  });

  Deno.test(`${p.name}: P-256 ECDH RFC 5903 §8.1`, () => {
    const i = p.keyShare(
      "secp256r1",
      fixed(hex("c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433")),
    );
    const r = p.keyShare(
      "secp256r1",
      fixed(hex("c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53")),
    );
    assert.equal(
      toHex(i.publicKey),
      "04dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180" +
        "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3",
    );
    assert.equal(
      toHex(r.publicKey),
      "04d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63" +
        "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
    );
    const z = "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de";
    assert.equal(toHex(i.sharedSecret(r.publicKey)!), z);
    assert.equal(toHex(r.sharedSecret(i.publicKey)!), z);
  });

  Deno.test(`${p.name}: P-384 ECDH RFC 5903 §8.2`, () => {
    const i = p.keyShare(
      "secp384r1",
      fixed(
        hex(
          "099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655" +
            "e35b538041e649ee3faef896783ab194",
        ),
      ),
    );
    const r = p.keyShare(
      "secp384r1",
      fixed(
        hex(
          "41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942" +
            "e0308312916b8ed2960e4bd55a7448fc",
        ),
      ),
    );
    assert.equal(
      toHex(i.publicKey),
      "04667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6" +
        "de3ac808acb4bdb4c88732aee95f41aa9482ed1fc0eeb9cafc4984625ccfc23f" +
        "65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c",
    );
    assert.equal(
      toHex(r.publicKey),
      "04e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d" +
        "0d1ac43a0336def96fda41d0774a3571dcfbec7aacf3196472169e838430367f" +
        "66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c",
    );
    const z = "11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4" +
      "d603135569b9e9d09cf5d4a270f59746";
    assert.equal(toHex(i.sharedSecret(r.publicKey)!), z);
    assert.equal(toHex(r.sharedSecret(i.publicKey)!), z);
    // Another curve's point, or a P-256-sized one, is not this curve's.
    assert.equal(i.sharedSecret(p.keyShare("secp256r1", seededRandom(9)).publicKey), null);
    const offCurve = r.publicKey.slice();
    offCurve[96]! ^= 1;
    assert.equal(i.sharedSecret(offCurve), null);
  });

  Deno.test(`${p.name}: P-256 round trip with random keys; invalid points give null`, () => {
    const random = seededRandom(8);
    const a = p.keyShare("secp256r1", random);
    const b = p.keyShare("secp256r1", random);
    assert.equal(a.publicKey.length, 65);
    assert.equal(a.publicKey[0], 4);
    const s1 = a.sharedSecret(b.publicKey);
    const s2 = b.sharedSecret(a.publicKey);
    assert.ok(s1 && s2);
    assert.equal(s1.length, 32);
    assert.deepEqual(s1, s2);

    const offCurve = b.publicKey.slice();
    offCurve[64]! ^= 1;
    assert.equal(a.sharedSecret(offCurve), null);
    const compressed = concat(
      new Uint8Array([2 + (b.publicKey[64]! & 1)]),
      b.publicKey.subarray(1, 33),
    );
    assert.equal(a.sharedSecret(compressed), null);
    const wrongPrefix = b.publicKey.slice();
    wrongPrefix[0] = 6;
    assert.equal(a.sharedSecret(wrongPrefix), null);
    assert.equal(a.sharedSecret(new Uint8Array(65)), null);
    assert.equal(a.sharedSecret(concat(new Uint8Array([4]), new Uint8Array(64).fill(0xff))), null);
    assert.equal(a.sharedSecret(b.publicKey.subarray(0, 64)), null);
    assert.equal(a.sharedSecret(new Uint8Array(0)), null);
  });

  Deno.test(`${p.name}: P-256 draws again when a scalar is out of range`, () => {
    // 0 and n..2^256-1 are not valid scalars; the third draw is.
    const draws = [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(7)];
    const share = p.keyShare("secp256r1", () => draws.shift()!);
    assert.equal(share.publicKey.length, 65);
    assert.equal(draws.length, 0);
    assert.throws(
      () => p.keyShare("secp256r1", () => new Uint8Array(32)),
      /Cannot create secp256r1 key share/,
    );
  });
}
