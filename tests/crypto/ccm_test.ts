import assert from "node:assert/strict";
import { aesCcm, createAesCcm } from "../../src/crypto/ccm.ts";
import { concat, hex, seededRandom, toHex } from "./hex.ts";

interface Vector {
  key: string;
  nonce: string;
  aad: string;
  plaintext: string;
  /** Ciphertext || tag. */
  sealed: string;
  tagLength: number;
}

const K1 = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const K2 = "d7828d13b2b0bdc325a76236df93cc6b";

/** RFC 3610 §8, 22 of the 24 packet vectors (13-byte nonce, L = 2; the packets' first 8 or 12 bytes are the AAD). */
const RFC3610: Vector[] = [
  [
    K1,
    "00000003020100a0a1a2a3a4a5",
    "0001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
    "588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0",
    8,
  ],
  [
    K1,
    "00000004030201a0a1a2a3a4a5",
    "0001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "72c91a36e135f8cf291ca894085c87e3cc15c439c9e43a3ba091d56e10400916",
    8,
  ],
  [
    K1,
    "00000005040302a0a1a2a3a4a5",
    "0001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    "51b1e5f44a197d1da46b0f8e2d282ae871e838bb64da8596574adaa76fbd9fb0c5",
    8,
  ],
  [
    K1,
    "00000006050403a0a1a2a3a4a5",
    "000102030405060708090a0b",
    "0c0d0e0f101112131415161718191a1b1c1d1e",
    "a28c6865939a9a79faaa5c4c2a9d4a91cdac8c96c861b9c9e61ef1",
    8,
  ],
  [
    K1,
    "00000007060504a0a1a2a3a4a5",
    "000102030405060708090a0b",
    "0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "dcf1fb7b5d9e23fb9d4e131253658ad86ebdca3e51e83f077d9c2d93",
    8,
  ],
  [
    K1,
    "00000008070605a0a1a2a3a4a5",
    "000102030405060708090a0b",
    "0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    "6fc1b011f006568b5171a42d953d469b2570a4bd87405a0443ac91cb94",
    8,
  ],
  [
    K1,
    "00000009080706a0a1a2a3a4a5",
    "0001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
    "0135d1b2c95f41d5d1d4fec185d166b8094e999dfed96c048c56602c97acbb7490",
    10,
  ],
  [
    K1,
    "0000000a090807a0a1a2a3a4a5",
    "0001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "7b75399ac0831dd2f0bbd75879a2fd8f6cae6b6cd9b7db24c17b4433f434963f34b4",
    10,
  ],
  [
    K1,
    "0000000b0a0908a0a1a2a3a4a5",
    "0001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    "82531a60cc24945a4b8279181ab5c84df21ce7f9b73f42e197ea9c07e56b5eb17e5f4e",
    10,
  ],
  [
    K1,
    "0000000c0b0a09a0a1a2a3a4a5",
    "000102030405060708090a0b",
    "0c0d0e0f101112131415161718191a1b1c1d1e",
    "07342594157785152b074098330abb141b947b566aa9406b4d999988dd",
    10,
  ],
  [
    K1,
    "0000000d0c0b0aa0a1a2a3a4a5",
    "000102030405060708090a0b",
    "0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "676bb20380b0e301e8ab79590a396da78b834934f53aa2e9107a8b6c022c",
    10,
  ],
  [
    K1,
    "0000000e0d0c0ba0a1a2a3a4a5",
    "000102030405060708090a0b",
    "0c0d0e0f101112131415161718191a1b1c1d1e1f20",
    "c0ffa0d6f05bdb67f24d43a4338d2aa4bed7b20e43cd1aa31662e7ad65d6db",
    10,
  ],
  [
    K2,
    "00412b4ea9cdbe3c9696766cfa",
    "0be1a88bace018b1",
    "08e8cf97d820ea258460e96ad9cf5289054d895ceac47c",
    "4cb97f86a2a4689a877947ab8091ef5386a6ffbdd080f8e78cf7cb0cddd7b3",
    8,
  ],
  [
    K2,
    "0033568ef7b2633c9696766cfa",
    "63018f76dc8a1bcb",
    "9020ea6f91bdd85afa0039ba4baff9bfb79c7028949cd0ec",
    "4ccb1e7ca981befaa0726c55d378061298c85c92814abc33c52ee81d7d77c08a",
    8,
  ],
  [
    K2,
    "00f8b678094e3b3c9696766cfa",
    "77b60f011c03e1525899bcae",
    "e88b6a46c78d63e52eb8c546efb5de6f75e9cc0d",
    "5545ff1a085ee2efbf52b2e04bee1e2336c73e3f762c0c7744fe7e3c",
    8,
  ],
  [
    K2,
    "00d560912d3f703c9696766cfa",
    "cd9044d2b71fdb8120ea60c0",
    "6435acbafb11a82e2f071d7ca4a5ebd93a803ba87f",
    "009769ecabdf48625594c59251e6035722675e04c847099e5ae0704551",
    8,
  ],
  [
    K2,
    "0042fff8f1951c3c9696766cfa",
    "d85bc7e69f944fb8",
    "8a19b950bcf71a018e5e6701c91787659809d67dbedd18",
    "bc218daa947427b6db386a99ac1aef23ade0b52939cb6a637cf9bec2408897c6ba",
    10,
  ],
  [
    K2,
    "00920f40e56cdc3c9696766cfa",
    "74a0ebc9069f5b37",
    "1761433c37c5a35fc1f39f406302eb907c6163be38c98437",
    "5810e6fd25874022e80361a478e3e9cf484ab04f447efff6f0a477cc2fc9bf548944",
    10,
  ],
  [
    K2,
    "0027ca0c7120bc3c9696766cfa",
    "44a3aa3aae6475ca",
    "a434a8e58500c6e41530538862d686ea9e81301b5ae4226bfa",
    "f2beed7bc5098e83feb5b31608f8e29c38819a89c8e776f1544d4151a4ed3a8b87b9ce",
    10,
  ],
  [
    K2,
    "005b8ccbcd9af83c9696766cfa",
    "ec46bb63b02520c33c49fd70",
    "b96b49e21d621741632875db7f6c9243d2d7c2",
    "31d750a09da3ed7fddd49a2032aabf17ec8ebf7d22c8088c666be5c197",
    10,
  ],
  [
    K2,
    "003ebe94044b9a3c9696766cfa",
    "47a65ac78b3d594227e85e71",
    "e2fcfbb880442c731bf95167c8ffd7895e337076",
    "e882f1dbd38ce3eda7c23f04dd65071eb41342acdf7e00dccec7ae52987d",
    10,
  ],
  [
    K2,
    "008d493b30ae8b3c9696766cfa",
    "6e37a6ef546d955d34ab6059",
    "abf21c0b02feb88f856df4a37381bce3cc128517d4",
    "f32905b88a641b04b9c9ffb58cc390900f3da12ab16dce9e82efa16da62059",
    10,
  ],
].map(([key, nonce, aad, plaintext, sealed, tagLength]) => ({
  key: key as string,
  nonce: nonce as string,
  aad: aad as string,
  plaintext: plaintext as string,
  sealed: sealed as string,
  tagLength: tagLength as number,
}));

const K_SP = "404142434445464748494a4b4c4d4e4f";

/** NIST SP 800-38C Appendix C, Examples 1-3 (nonces of 7, 8 and 12 bytes; tags of 4, 6, 8). */
const SP800_38C: Vector[] = [
  {
    key: K_SP,
    nonce: "10111213141516",
    aad: "0001020304050607",
    plaintext: "20212223",
    sealed: "7162015b4dac255d",
    tagLength: 4,
  },
  {
    key: K_SP,
    nonce: "1011121314151617",
    aad: "000102030405060708090a0b0c0d0e0f",
    plaintext: "202122232425262728292a2b2c2d2e2f",
    sealed: "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd",
    tagLength: 6,
  },
  {
    key: K_SP,
    nonce: "101112131415161718191a1b",
    aad: "000102030405060708090a0b0c0d0e0f10111213",
    plaintext: "202122232425262728292a2b2c2d2e2f3031323334353637",
    sealed: "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951",
    tagLength: 8,
  },
];

/** Wycheproof aes_ccm_test.json, 96-bit nonce and 128-bit tag groups (tcId 11, 12, 24, 36, 141, 142, 157, 168). */
const WYCHEPROOF: Vector[] = [
  [
    "9415f925bcb41dc25e86c826dbc8bf68",
    "bdffaa763b916ff0ee3f3ce4",
    "705d676cd8a94451",
    "feb36167eafc02c8e2bd6e13817686ba",
    "08db327a88be7b48f430fd7bfccdf502" + "b7c249f810adacf99abded1f3b9130f2",
  ],
  [
    "d97c9b043bdccfd59491a995e78f1696",
    "ef423240358830df915506a3",
    "3ddba7b3ab69c8b2",
    "f047594a5cffda64303a80b2fa6a957169",
    "e0caf2a9d50f70ecaa43b4a287c3b34a99" + "cff4c61882b413b686ff35b63a3a73de",
  ],
  [
    "a3fd2fdcce8a63bfe4eb2db7e42adbe1",
    "690e7ad1e05d0d4ab4552cf7",
    "ab91ec8cc73373",
    "be0231b5c7861f0af7b6381479d25b77",
    "a884f769fcc727839d59711fa3cb5ee0" + "f2017e3bd10bb1b43fdcc0feeffc9c68",
  ],
  [
    "e3d3ec41f28eb35fb53f5fa91804e051",
    "89d270fc8b583bc631cefd39",
    "3d2f458c67c5b6c794b1f12dad409e0f",
    "847acf521995b33f8bc474c8befbca3bb2",
    "28aaec53493cd6252cf6410ed141bdafb7" + "47bf3e16c227ca11fd68a16d407c2cc3",
  ],
  [
    "b907a45075513fe8a8019edee3f2591487b2a030b03c6e1d771c862571d2ea1e",
    "118a6964c2d3e380071f5266",
    "034585621af8d7ff",
    "55a465644f5b650928cbee7c063214d6",
    "ab01f92db4f210bdb5edaf0a1bd19eba" + "621630c505d24e3b29294977d8ffa4b4",
  ],
  [
    "f60c6a1b625725f76c7037b48fe3577fa7f7b87b1bd5a982176d182306ffb870",
    "f0384fb876121410633d993d",
    "9aaf299eeea78f79",
    "63858ca3e2ce69887b578a3c167b421c9c",
    "f05e290bbbc61927fa65760648dcca88b0" + "b721be96a6b95c0931fb243dd1287c70",
  ],
  [
    "a5569e729a69b24ba6e0ff15c4627897436824c941e9d00b2e93fddc4ba77657",
    "564dee49ab00d240fc1068c3",
    "d19f2d989095f7ab03a5fde84416e00c0e",
    "87b3a4d7b26d8d3203a0de1d64ef82e3",
    "2fadf16ad16a21c317af9d0bc187f136" + "88caf70f6b5d8f3ef6a39d1ae413772b",
  ],
  [
    "f59abcbf4218bd5c7601f080b5fbd3ae088733702c8fbef0c5296a406f563827",
    "a5eb0e6fe669e68239ace550",
    "d603491fbf0950d36489abb40dd8d42b",
    "97dcbacd70a678cfaed13c942cf920e851ec3e6fb1f6c6eb95f1c965fb1a13",
    "c0b27edd6533cfba81323ac78d0aeb0371b1d7b89938e04c319148961513fb" +
    "56aabbde47ab2c53db48703033f8ca68",
  ],
].map(([key, nonce, aad, plaintext, sealed]) => ({
  key: key!,
  nonce: nonce!,
  aad: aad!,
  plaintext: plaintext!,
  sealed: sealed!,
  tagLength: 16,
}));

function checkVector(v: Vector): void {
  const nonce = hex(v.nonce);
  const ccm = createAesCcm(hex(v.key), v.tagLength, nonce.length);
  const sealed = ccm.seal(nonce, hex(v.aad), hex(v.plaintext));
  assert.equal(toHex(sealed), v.sealed);
  const opened = ccm.open(nonce, hex(v.aad), hex(v.sealed));
  assert.ok(opened);
  assert.equal(toHex(opened), v.plaintext);
}

Deno.test("AES-CCM: RFC 3610 packet vectors", () => {
  for (const v of RFC3610) checkVector(v);
});

Deno.test("AES-CCM: NIST SP 800-38C examples 1-3", () => {
  for (const v of SP800_38C) checkVector(v);
});

Deno.test("AES-CCM: NIST SP 800-38C example 4 (65536-byte AAD, 0xfffe length encoding)", () => {
  // Associated data: the 256 bytes 00..ff repeated 256 times.
  const aad = new Uint8Array(65536);
  for (let i = 0; i < aad.length; i++) aad[i] = i & 0xff;
  checkVector({
    key: K_SP,
    nonce: "101112131415161718191a1b1c",
    aad: toHex(aad),
    plaintext: "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
    sealed: "69915dad1e84c6376a68c2967e4dab615ae0fd1faec44cc484828529463ccf72" +
      "b4ac6bec93e8598e7f0dadbcea5b",
    tagLength: 14,
  });
});

Deno.test("AES-CCM: Wycheproof 12-byte-nonce vectors through aesCcm()", () => {
  for (const v of WYCHEPROOF) {
    const ccm = aesCcm(hex(v.key), 16);
    assert.equal(ccm.tagLength, 16);
    assert.equal(toHex(ccm.seal(hex(v.nonce), hex(v.aad), hex(v.plaintext))), v.sealed);
    const opened = ccm.open(hex(v.nonce), hex(v.aad), hex(v.sealed));
    assert.ok(opened);
    assert.equal(toHex(opened), v.plaintext);
  }
});

Deno.test("AES-CCM: SP 800-38C example 3 is a CCM_8-shaped vector (12-byte nonce, 8-byte tag)", () => {
  const v = SP800_38C[2]!;
  const ccm = aesCcm(hex(v.key), 8);
  assert.equal(toHex(ccm.seal(hex(v.nonce), hex(v.aad), hex(v.plaintext))), v.sealed);
});

Deno.test("AES-CCM: round trips over lengths around block boundaries", () => {
  const random = seededRandom(7);
  for (const keyLength of [16, 32]) {
    for (const tagLength of [8, 16] as const) {
      const ccm = aesCcm(random(keyLength), tagLength);
      for (const n of [0, 1, 15, 16, 17, 31, 32, 33, 255, 1024, 1500]) {
        const nonce = random(12);
        const aad = random(13);
        const plaintext = random(n);
        const sealed = ccm.seal(nonce, aad, plaintext);
        assert.equal(sealed.length, n + tagLength);
        assert.deepEqual(ccm.open(nonce, aad, sealed), plaintext);
      }
    }
  }
});

Deno.test("AES-CCM: open rejects every single-bit change, wrong AAD, wrong nonce and truncation", () => {
  const random = seededRandom(11);
  const ccm = aesCcm(random(16), 16);
  const nonce = random(12);
  const aad = random(13);
  const sealed = ccm.seal(nonce, aad, random(40));
  for (let i = 0; i < sealed.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = sealed.slice();
      bad[i]! ^= 1 << bit;
      assert.equal(ccm.open(nonce, aad, bad), null);
    }
  }
  const badAad = aad.slice();
  badAad[0]! ^= 1;
  assert.equal(ccm.open(nonce, badAad, sealed), null);
  const badNonce = nonce.slice();
  badNonce[11]! ^= 1;
  assert.equal(ccm.open(badNonce, aad, sealed), null);
  for (let n = 0; n < sealed.length; n++) {
    assert.equal(ccm.open(nonce, aad, sealed.subarray(0, n)), null);
  }
  assert.equal(ccm.open(nonce.subarray(0, 11), aad, sealed), null);
  assert.equal(ccm.open(concat(nonce, new Uint8Array(1)), aad, sealed), null);
});

Deno.test("AES-CCM: open accepts unaligned subarrays", () => {
  const random = seededRandom(3);
  const ccm = aesCcm(random(16), 8);
  const nonce = random(12);
  const plaintext = random(50);
  const sealed = ccm.seal(nonce, new Uint8Array(0), plaintext);
  const shifted = concat(new Uint8Array(3), sealed).subarray(3);
  assert.deepEqual(ccm.open(nonce, new Uint8Array(0), shifted), plaintext);
});

Deno.test("AES-CCM: bad parameters are programming errors", () => {
  assert.throws(() => aesCcm(new Uint8Array(15), 16), /Cannot create AES-CCM: key of 15 bytes/);
  assert.throws(() => createAesCcm(new Uint8Array(16), 5, 12), /Cannot create AES-CCM: tag/);
  assert.throws(() => createAesCcm(new Uint8Array(16), 18, 12), /Cannot create AES-CCM: tag/);
  assert.throws(() => createAesCcm(new Uint8Array(16), 16, 6), /Cannot create AES-CCM: nonce/);
  assert.throws(() => createAesCcm(new Uint8Array(16), 16, 14), /Cannot create AES-CCM: nonce/);
  const ccm = aesCcm(new Uint8Array(16), 16);
  assert.throws(() => ccm.seal(new Uint8Array(13), new Uint8Array(0), new Uint8Array(1)), /nonce/);
  // With a 13-byte nonce L = 2, so 65536 bytes is one too many (RFC 3610 §2).
  const short = createAesCcm(new Uint8Array(16), 8, 13);
  assert.throws(() => short.seal(new Uint8Array(13), new Uint8Array(0), new Uint8Array(65536)));
  assert.equal(
    short.seal(new Uint8Array(13), new Uint8Array(0), new Uint8Array(65535)).length,
    65543,
  );
});
