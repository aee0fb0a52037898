/**
 * A crypto provider on the runtime's built-in `node:crypto` (native code in
 * Deno), for the primitives where it measurably beats the portable `@noble`
 * one (see `bench/crypto_bench.ts`):
 *
 * - AES-GCM and ChaCha20-Poly1305: native code (AES-NI), even though
 *   `node:crypto` keys a fresh cipher object per record (most of a 64-byte
 *   record's cost);
 * - X25519 and P-256 ECDH: about 8x faster than noble's pure-JS curves, which
 *   dominate an ECDHE-PSK handshake.
 *
 * Everything else is the noble provider's: `node:crypto` has no AES-CCM in
 * Deno, and its HMAC and SHA-2 cost more per call than noble's for the short
 * inputs TLS hashes (crossing into native code costs more than the work).
 *
 * Private keys are still drawn from the injected random source, so tests can
 * pin them, and the same vector suite runs against both providers.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  type CipherGCM,
  type CipherGCMTypes,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createPrivateKey,
  createPublicKey,
  type DecipherGCM,
  diffieHellman,
  type KeyObject,
} from "node:crypto";
import { p256, p384 } from "@noble/curves/nist.js";
import { nistScalar, nobleProvider } from "./noble.ts";
import { signingKey, transcriptSignature, verifySignature } from "./signatures.ts";
import type {
  Aead,
  AeadName,
  CbcCipher,
  CryptoProvider,
  GroupName,
  HashName,
  KeyShare,
  Mac,
  RandomSource,
  RunningHash,
} from "./provider.ts";
import { checkMaskSample, InPlaceAead, sealTarget } from "./provider.ts";

/** A plain Uint8Array over the bytes of a node `Buffer` (whose `slice` does not copy). */
function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

type NodeAeadName = "aes-128-gcm" | "aes-256-gcm" | "chacha20-poly1305";

/** Options of every AEAD cipher object: one shared object rather than one per record. */
const TAG_16 = { authTagLength: 16 } as const;

/** setAAD's options, one object filled in per record rather than a new one (read during the call only). */
const AAD_OPTIONS = { plaintextLength: 0 };

/**
 * node:crypto's cipher object for an AEAD. Its typings declare one overload
 * per mode family (GCM, ChaCha20-Poly1305, CCM, OCB), none of which takes
 * the union; GCM's describes the calls made here for both algorithms.
 */
function aeadCipher(algorithm: NodeAeadName, key: Uint8Array, nonce: Uint8Array): CipherGCM {
  return createCipheriv(algorithm as CipherGCMTypes, key, nonce, TAG_16);
}

/** The deciphering counterpart of {@link aeadCipher}. */
function aeadDecipher(algorithm: NodeAeadName, key: Uint8Array, nonce: Uint8Array): DecipherGCM {
  return createDecipheriv(algorithm as CipherGCMTypes, key, nonce, TAG_16);
}

/** AES-GCM (RFC 5288) or ChaCha20-Poly1305 (RFC 8439) with a 12-byte nonce and a 16-byte tag. */
class NodeAead extends InPlaceAead {
  readonly tagLength = 16;
  readonly #algorithm: NodeAeadName;
  readonly #key: Uint8Array;

  /** `key` is kept as given, not copied: the caller does not change it (see `aead`). */
  constructor(algorithm: NodeAeadName, key: Uint8Array) {
    super();
    this.#algorithm = algorithm;
    this.#key = key;
  }

  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    at: number,
  ): void {
    if (nonce.length !== 12) {
      throw new TypeError(`Cannot seal ${this.#algorithm}: nonce of ${nonce.length} bytes`);
    }
    const target = sealTarget(out, at, plaintext.length + 16);
    const cipher = aeadCipher(this.#algorithm, this.#key, nonce);
    AAD_OPTIONS.plaintextLength = plaintext.length;
    cipher.setAAD(aad, AAD_OPTIONS);
    const body = cipher.update(plaintext);
    target.set(body);
    // A stream cipher mode: final() has nothing left, but must run to make the tag.
    const tail = cipher.final();
    if (tail.length > 0) target.set(tail, body.length);
    target.set(cipher.getAuthTag(), plaintext.length);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (nonce.length !== 12 || sealed.length < 16) return null;
    const n = sealed.length - 16;
    try {
      const decipher = aeadDecipher(this.#algorithm, this.#key, nonce);
      AAD_OPTIONS.plaintextLength = n;
      decipher.setAAD(aad, AAD_OPTIONS);
      decipher.setAuthTag(sealed.subarray(n));
      const body = decipher.update(sealed.subarray(0, n));
      // final() throws when the tag does not verify: to the record layer, noise.
      const tail = decipher.final();
      if (tail.length === 0) return plain(body);
      const out = new Uint8Array(body.length + tail.length);
      out.set(body);
      out.set(tail, body.length);
      return out;
    } catch {
      return null;
    }
  }
}

/** Raw AES-CBC without padding (TLS pads itself, RFC 5246 §6.2.3.2). */
class NodeCbc implements CbcCipher {
  readonly #algorithm: "aes-128-cbc" | "aes-256-cbc";
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    if (key.length !== 16 && key.length !== 32) {
      throw new TypeError(`Cannot create AES-CBC: key of ${key.length} bytes`);
    }
    this.#algorithm = key.length === 16 ? "aes-128-cbc" : "aes-256-cbc";
    this.#key = key.slice();
  }

  encrypt(iv: Uint8Array, data: Uint8Array): Uint8Array {
    checkCbcInput("encrypt", iv, data);
    const c = createCipheriv(this.#algorithm, this.#key, iv);
    c.setAutoPadding(false);
    return join(c.update(data), c.final());
  }

  decrypt(iv: Uint8Array, data: Uint8Array): Uint8Array {
    checkCbcInput("decrypt", iv, data);
    const d = createDecipheriv(this.#algorithm, this.#key, iv);
    d.setAutoPadding(false);
    return join(d.update(data), d.final());
  }
}

function checkCbcInput(op: string, iv: Uint8Array, data: Uint8Array): void {
  if (iv.length !== 16) throw new TypeError(`Cannot ${op} AES-CBC: IV of ${iv.length} bytes`);
  if (data.length % 16 !== 0) {
    throw new TypeError(
      `Cannot ${op} AES-CBC: ${data.length} bytes is not a whole number of blocks`,
    );
  }
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (b.length === 0) return plain(a);
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** DER prefix of a PKCS #8 X25519 private key (RFC 8410 §7): the 32 key bytes follow. */
const X25519_PKCS8 = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
);

/** DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410 §4): the 32 key bytes follow. */
const X25519_SPKI = Uint8Array.of(
  0x30,
  0x2a,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x03,
  0x21,
  0x00,
);

function prefixed(prefix: Uint8Array, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + key.length);
  out.set(prefix);
  out.set(key, prefix.length);
  return out;
}

/** X25519 (RFC 7748 §5) for ECDHE (RFC 8422 §5.11 as updated by RFC 8446). */
class NodeX25519Share implements KeyShare {
  readonly publicKey: Uint8Array;
  readonly #private: KeyObject;

  constructor(random: RandomSource) {
    // RFC 7748 §6.1: 32 random bytes; the clamping is the implementation's.
    const secret = random(32);
    if (secret.length !== 32) {
      throw new TypeError(
        "Cannot create X25519 key share: random source returned the wrong length",
      );
    }
    this.#private = createPrivateKey({
      key: Buffer.from(prefixed(X25519_PKCS8, secret).buffer),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(this.#private).export({ format: "der", type: "spki" });
    this.publicKey = new Uint8Array(spki.subarray(X25519_SPKI.length));
  }

  sharedSecret(peerPublic: Uint8Array): Uint8Array | null {
    if (peerPublic.length !== 32) return null;
    try {
      const publicKey = createPublicKey({
        key: Buffer.from(prefixed(X25519_SPKI, peerPublic).buffer),
        format: "der",
        type: "spki",
      });
      // RFC 7748 §6.1 / RFC 8422 §5.11: an all-zero result (a small-order
      // peer value) MUST be rejected; the native code refuses to derive it.
      const shared = diffieHellman({ privateKey: this.#private, publicKey });
      let acc = 0;
      for (let i = 0; i < shared.length; i++) acc |= shared[i]!;
      return acc === 0 ? null : new Uint8Array(shared);
    } catch {
      return null;
    }
  }
}

/** ECDH on secp256r1 or secp384r1 (RFC 8422 §5.10), uncompressed points only (RFC 8422 §5.1.2). */
class NodeNistShare implements KeyShare {
  readonly publicKey: Uint8Array;
  readonly #ecdh;

  constructor(group: "secp256r1" | "secp384r1", random: RandomSource) {
    const curve = group === "secp256r1" ? p256 : p384;
    this.#ecdh = createECDH(group === "secp256r1" ? "prime256v1" : "secp384r1");
    this.#ecdh.setPrivateKey(nistScalar(group, random, (s) => curve.utils.isValidSecretKey(s)));
    this.publicKey = new Uint8Array(this.#ecdh.getPublicKey(null, "uncompressed"));
  }

  sharedSecret(peerPublic: Uint8Array): Uint8Array | null {
    // RFC 8422 §5.1.2: only the uncompressed form (0x04 || X || Y) is used.
    if (peerPublic.length !== this.publicKey.length || peerPublic[0] !== 0x04) return null;
    try {
      // The native code checks the point is on the curve (RFC 8422 §5.11);
      // RFC 8422 §5.10: the premaster secret is the x-coordinate only.
      return new Uint8Array(this.#ecdh.computeSecret(peerPublic));
    } catch {
      return null;
    }
  }
}

/**
 * Deno's built-in `node:crypto` for AES-GCM, ChaCha20-Poly1305, AES-CBC,
 * X25519 and P-256; the `@noble` provider for hashes, HMAC and AES-CCM.
 */
export const nodeProvider: CryptoProvider = {
  name: "node",

  hash(hash: HashName, data: Uint8Array): Uint8Array {
    return nobleProvider.hash(hash, data);
  },

  hmac(hash: HashName, key: Uint8Array): Mac {
    return nobleProvider.hmac(hash, key);
  },

  recordNumberMask(cipher: "aes" | "chacha20", key: Uint8Array, sample: Uint8Array): Uint8Array {
    checkMaskSample(sample);
    if (cipher === "aes") {
      if (key.length !== 16 && key.length !== 32) {
        throw new TypeError(`Cannot mask a record number: AES key of ${key.length} bytes`);
      }
      const ecb = createCipheriv(key.length === 16 ? "aes-128-ecb" : "aes-256-ecb", key, null);
      ecb.setAutoPadding(false);
      return new Uint8Array(Buffer.concat([ecb.update(sample), ecb.final()]));
    }
    // node's chacha20 takes counter (32 bits, little endian) || nonce as its
    // 16-byte IV: the sample's layout exactly (RFC 9147 §4.2.3).
    const stream = createCipheriv("chacha20", key, sample);
    return new Uint8Array(Buffer.concat([stream.update(new Uint8Array(16)), stream.final()]));
  },

  recordNumberMasker(
    cipher: "aes" | "chacha20",
    key: Uint8Array,
  ): (sample: Uint8Array) => Uint8Array {
    if (cipher === "chacha20") {
      // A native ChaCha20 takes its nonce at creation: one object a record
      // costs more than noble's one block.
      return nobleProvider.recordNumberMasker(cipher, key);
    }
    if (key.length !== 16 && key.length !== 32) {
      throw new TypeError(`Cannot mask a record number: AES key of ${key.length} bytes`);
    }
    // ECB keeps no state between blocks: one keyed object serves every record.
    const ecb = createCipheriv(key.length === 16 ? "aes-128-ecb" : "aes-256-ecb", key, null);
    ecb.setAutoPadding(false);
    return (sample) => {
      checkMaskSample(sample);
      return new Uint8Array(ecb.update(sample));
    };
  },

  runningHash(hash: HashName): RunningHash {
    return nobleProvider.runningHash(hash);
  },

  aead(name: AeadName, key: Uint8Array): Aead {
    switch (name) {
      case "aes-gcm":
        if (key.length !== 16 && key.length !== 32) {
          throw new TypeError(`Cannot create AES-GCM: key of ${key.length} bytes`);
        }
        return new NodeAead(key.length === 16 ? "aes-128-gcm" : "aes-256-gcm", key);
      case "chacha20-poly1305":
        if (key.length !== 32) {
          throw new TypeError(`Cannot create ChaCha20-Poly1305: key of ${key.length} bytes`);
        }
        return new NodeAead("chacha20-poly1305", key);
      case "aes-ccm":
      case "aes-ccm-8":
        // No CCM in Deno's node:crypto.
        return nobleProvider.aead(name, key);
      default: {
        const unknown: never = name;
        throw new TypeError(`Cannot create AEAD: unknown algorithm ${String(unknown)}`);
      }
    }
  },

  cbc(key: Uint8Array): CbcCipher {
    return new NodeCbc(key);
  },

  keyShare(group: GroupName, random: RandomSource): KeyShare {
    switch (group) {
      case "x25519":
        return new NodeX25519Share(random);
      case "secp256r1":
      case "secp384r1":
        return new NodeNistShare(group, random);
      default: {
        const unknown: never = group;
        throw new TypeError(`Cannot create key share: unknown group ${String(unknown)}`);
      }
    }
  },
  signingKey,

  verify: verifySignature,

  transcriptSignature,
};
