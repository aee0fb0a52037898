/**
 * The crypto primitives per provider: what each record and each handshake
 * pays. Every primitive is a library's (node:crypto or @noble); `gcm.ts` is
 * the load generator's own AES-GCM (tools/gcm.ts), which guards no secret,
 * measured beside them for comparison.
 * `deno task bench`
 */
import { gcm } from "@noble/ciphers/aes.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { createCipheriv } from "node:crypto";
import { aesGcm } from "../tools/gcm.ts";
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import type { AeadName, CryptoProvider } from "../src/crypto/provider.ts";
import { prf } from "../src/crypto/prf.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const PROVIDERS: CryptoProvider[] = [nobleProvider, nodeProvider];
const nonce = random(12);
const aad = random(13);

for (const size of [64, 1200]) {
  const plaintext = random(size);
  const key16 = random(16);
  Deno.bench({
    name: `seal aes-128-gcm ${size} B: noble gcm() per call`,
    group: `seal aes-128-gcm ${size} B`,
    fn: () => {
      gcm(key16, nonce, aad).encrypt(plaintext);
    },
  });
  const key32 = random(32);
  Deno.bench({
    name: `seal chacha20-poly1305 ${size} B: noble chacha20poly1305() per call`,
    group: `seal chacha20-poly1305 ${size} B`,
    fn: () => {
      chacha20poly1305(key32, nonce, aad).encrypt(plaintext);
    },
  });
  Deno.bench({
    name: `seal chacha20-poly1305 ${size} B: node:crypto cipher object per record`,
    group: `seal chacha20-poly1305 ${size} B`,
    fn: () => {
      const c = createCipheriv("chacha20-poly1305", key32, nonce, { authTagLength: 16 });
      c.setAAD(aad, { plaintextLength: plaintext.length });
      c.update(plaintext);
      c.final();
      c.getAuthTag();
    },
  });
  for (
    const [aead, keyLength] of [
      ["aes-gcm", 16],
      ["chacha20-poly1305", 32],
      ["aes-ccm", 16],
    ] as [AeadName, number][]
  ) {
    const key = aead === "aes-gcm" ? key16 : random(keyLength);
    const label = aead === "aes-gcm" ? "aes-128-gcm" : aead;
    if (aead === "aes-gcm") {
      // The load generator's table-driven AES-GCM, against both providers.
      const ours = aesGcm(key);
      const sealed = ours.seal(nonce, aad, plaintext);
      Deno.bench({
        name: `seal ${label} ${size} B: gcm.ts`,
        group: `seal ${label} ${size} B`,
        fn: () => {
          ours.seal(nonce, aad, plaintext);
        },
      });
      Deno.bench({
        name: `open ${label} ${size} B: gcm.ts`,
        group: `open ${label} ${size} B`,
        fn: () => {
          if (ours.open(nonce, aad, sealed) === null) throw new Error("bench AEAD did not open");
        },
      });
    }
    for (const p of PROVIDERS) {
      const a = p.aead(aead, key);
      const sealed = a.seal(nonce, aad, plaintext);
      Deno.bench({
        name: `seal ${label} ${size} B: ${p.name}`,
        group: `seal ${label} ${size} B`,
        baseline: p === nobleProvider,
        fn: () => {
          a.seal(nonce, aad, plaintext);
        },
      });
      Deno.bench({
        name: `open ${label} ${size} B: ${p.name}`,
        group: `open ${label} ${size} B`,
        baseline: p === nobleProvider,
        fn: () => {
          if (a.open(nonce, aad, sealed) === null) throw new Error("bench AEAD did not open");
        },
      });
    }
  }
}

for (const p of PROVIDERS) {
  for (const group of ["x25519", "secp256r1"] as const) {
    const peer = p.keyShare(group, random);
    Deno.bench({
      name: `${group} key share + shared secret: ${p.name}`,
      group: `ecdhe ${group}`,
      baseline: p === nobleProvider,
      fn: () => {
        if (p.keyShare(group, random).sharedSecret(peer.publicKey) === null) {
          throw new Error("bench ECDH failed");
        }
      },
    });
  }
  const mac = p.hmac("sha256", random(32));
  const data = random(64);
  Deno.bench({
    name: `hmac-sha256 64 B, keyed state reused: ${p.name}`,
    group: "hmac",
    fn: () => {
      mac.compute(data);
    },
  });
}

const secret = random(48);
const seed = random(64);
Deno.bench({
  name: "PRF sha256: master secret (48 B)",
  group: "prf",
  fn: () => {
    prf(nobleProvider, "sha256", random(48), "master secret", seed, 48);
  },
});
Deno.bench({
  name: "PRF sha256: key block (40 B, AES-128-GCM)",
  group: "prf",
  fn: () => {
    prf(nobleProvider, "sha256", secret, "key expansion", seed, 40);
  },
});
Deno.bench({
  name: "PRF sha384: key block (72 B, AES-256-GCM)",
  group: "prf",
  fn: () => {
    prf(nobleProvider, "sha384", secret, "key expansion", seed, 72);
  },
});
Deno.bench({
  name: "PRF sha256: verify_data (12 B)",
  group: "prf",
  fn: () => {
    prf(nobleProvider, "sha256", secret, "client finished", seed.subarray(0, 32), 12);
  },
});
