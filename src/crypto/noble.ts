/**
 * The portable crypto provider, every primitive from `@noble/ciphers`,
 * `@noble/hashes` and `@noble/curves` (pure TypeScript, audited, no native
 * code); the modes no library offers here, AES-CCM (`ccm.ts`) and raw
 * AES-CBC, are built on noble's AES block function. The default provider
 * is `node.ts` (the runtime's native, AES-NI backed crypto); this one runs
 * anywhere.
 *
 * Keyed state is built once per key where noble allows it: the HMAC
 * inner/outer pad states and the AES key schedules of CBC and CCM. noble's
 * AES-GCM and ChaCha20-Poly1305 take the key per call.
 *
 * @module
 */

import { cbc, ecb, gcm } from "@noble/ciphers/aes.js";
import { chacha20, chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { p256, p384 } from "@noble/curves/nist.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256, sha384 } from "@noble/hashes/sha2.js";
import { aesCcm } from "./ccm.ts";
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

const HASHES = { sha256, sha384 } as const;

/** The part of noble's keyed HMAC state we use (its exported type is awkward to name). */
interface HmacState {
  readonly outputLen: number;
  update(data: Uint8Array): unknown;
  digestInto(out: Uint8Array): void;
  /** Copies this state into `to` (reusing its buffers) or into a new object. */
  _cloneInto(to?: HmacState): HmacState;
}

/** HMAC with the ipad/opad states computed once; each call clones them into a reused object. */
class NobleMac implements Mac {
  readonly length: number;
  readonly #base: HmacState;
  #work: HmacState | undefined;

  constructor(hash: HashName, key: Uint8Array) {
    this.#base = hmac.create(HASHES[hash], key) as unknown as HmacState;
    this.length = this.#base.outputLen;
  }

  compute(...parts: Uint8Array[]): Uint8Array {
    // `_cloneInto` copies the keyed state into the same object every time,
    // so a MAC costs no allocation beyond its output.
    const h = this.#base._cloneInto(this.#work);
    this.#work = h;
    for (const p of parts) h.update(p);
    const out = new Uint8Array(this.length);
    h.digestInto(out);
    return out;
  }
}

/** One of noble's AEADs with a 12-byte nonce and a 16-byte tag: `(key, nonce, aad) => cipher`. */
type NobleAeadFactory = (
  key: Uint8Array,
  nonce: Uint8Array,
  aad?: Uint8Array,
) => { encrypt(plaintext: Uint8Array): Uint8Array; decrypt(sealed: Uint8Array): Uint8Array };

/** noble's AES-GCM or ChaCha20-Poly1305, keyed per record as noble's API is. */
class NobleAead extends InPlaceAead {
  readonly tagLength = 16;
  readonly #factory: NobleAeadFactory;
  readonly #key: Uint8Array;

  constructor(factory: NobleAeadFactory, key: Uint8Array) {
    super();
    this.#factory = factory;
    this.#key = key.slice();
  }

  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    at: number,
  ): void {
    if (nonce.length !== 12) throw new TypeError(`Cannot seal: nonce of ${nonce.length} bytes`);
    const target = sealTarget(out, at, plaintext.length + 16);
    target.set(this.#factory(this.#key, nonce, aad).encrypt(plaintext));
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (nonce.length !== 12 || sealed.length < 16) return null;
    try {
      return this.#factory(this.#key, nonce, aad).decrypt(sealed);
    } catch {
      // A tag that does not verify: to the record layer, noise.
      return null;
    }
  }
}

function checkAesKey(what: string, key: Uint8Array): void {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new TypeError(`Cannot create ${what}: key of ${key.length} bytes`);
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

/**
 * Raw AES-CBC: noble's `cbc` mode without its padding, as TLS pads itself
 * (RFC 5246 §6.2.3.2). The key is expanded per record, which only the
 * legacy CBC suites pay.
 */
class NobleCbc implements CbcCipher {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    checkAesKey("AES-CBC", key);
    this.#key = key.slice();
  }

  encrypt(iv: Uint8Array, data: Uint8Array): Uint8Array {
    checkCbcInput("encrypt", iv, data);
    return cbc(this.#key, iv, NO_PADDING).encrypt(data);
  }

  decrypt(iv: Uint8Array, data: Uint8Array): Uint8Array {
    checkCbcInput("decrypt", iv, data);
    return cbc(this.#key, iv, NO_PADDING).decrypt(data);
  }
}

const NO_PADDING = { disablePadding: true } as const;

/** Whether every byte of `b` is zero, without an early exit. */
function isAllZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

/** X25519 (RFC 7748 §5) for ECDHE (RFC 8422 §5.11 as updated by RFC 8446). */
class X25519Share implements KeyShare {
  readonly publicKey: Uint8Array;
  readonly #secret: Uint8Array;

  constructor(random: RandomSource) {
    // RFC 7748 §6.1: 32 random bytes; the scalar clamping is x25519's own.
    this.#secret = random(32);
    if (this.#secret.length !== 32) {
      throw new TypeError(
        "Cannot create X25519 key share: random source returned the wrong length",
      );
    }
    this.publicKey = x25519.getPublicKey(this.#secret);
  }

  sharedSecret(peerPublic: Uint8Array): Uint8Array | null {
    if (peerPublic.length !== 32) return null;
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(this.#secret, peerPublic);
    } catch {
      // noble rejects low-order points itself.
      return null;
    }
    // RFC 7748 §6.1 / RFC 8422 §5.11: an all-zero result means a
    // small-order peer value and MUST be rejected.
    return isAllZero(shared) ? null : shared;
  }
}

/** ECDH on secp256r1 or secp384r1 (RFC 8422 §5.10), uncompressed points only (RFC 8422 §5.1.2). */
class NistShare implements KeyShare {
  readonly publicKey: Uint8Array;
  readonly #curve: typeof p256 | typeof p384;
  readonly #secret: Uint8Array;

  constructor(group: "secp256r1" | "secp384r1", random: RandomSource) {
    this.#curve = group === "secp256r1" ? p256 : p384;
    this.#secret = nistScalar(group, random, (s) => this.#curve.utils.isValidSecretKey(s));
    this.publicKey = this.#curve.getPublicKey(this.#secret, false);
  }

  sharedSecret(peerPublic: Uint8Array): Uint8Array | null {
    // RFC 8422 §5.1.2: only the uncompressed form (0x04 || X || Y) is used.
    if (peerPublic.length !== this.publicKey.length || peerPublic[0] !== 0x04) return null;
    try {
      // noble checks the point is on the curve (RFC 8422 §5.11 validation).
      // RFC 8422 §5.10: the premaster secret is the x-coordinate only.
      return this.#curve.getSharedSecret(this.#secret, peerPublic, true).slice(1);
    } catch {
      return null;
    }
  }
}

/**
 * A uniformly random scalar in [1, n-1] for a NIST curve, by rejection
 * sampling; a draw is out of range with probability about 2^-32, so 8 tries
 * suffice. Both providers draw it so, so a pinned random source gives the
 * same key in either.
 */
export function nistScalar(
  group: "secp256r1" | "secp384r1",
  random: RandomSource,
  isValid: (candidate: Uint8Array) => boolean,
): Uint8Array {
  const length = group === "secp256r1" ? 32 : 48;
  for (let i = 0; i < 8; i++) {
    const candidate = random(length);
    if (candidate.length === length && isValid(candidate)) return candidate;
  }
  throw new Error(`Cannot create ${group} key share: no valid scalar from the random source`);
}

/** noble's incremental SHA-2: a digest so far is taken from a clone, so the hash goes on. */
function nobleRunningHash(hash: HashName): RunningHash {
  const state = (hash === "sha256" ? sha256 : sha384).create();
  return {
    update: (data) => void state.update(data),
    digest: () => state.clone().digest(),
  };
}

/** The portable `@noble` implementation of every primitive the engine uses. */
export const nobleProvider: CryptoProvider = {
  name: "noble",

  hash(hash: HashName, data: Uint8Array): Uint8Array {
    return HASHES[hash](data);
  },

  hmac(hash: HashName, key: Uint8Array): Mac {
    return new NobleMac(hash, key);
  },

  recordNumberMask(cipher: "aes" | "chacha20", key: Uint8Array, sample: Uint8Array): Uint8Array {
    checkMaskSample(sample);
    if (cipher === "aes") return ecb(key, { disablePadding: true }).encrypt(sample);
    const counter = new DataView(sample.buffer, sample.byteOffset, 4).getUint32(0, true);
    return chacha20(key, sample.subarray(4), new Uint8Array(16), undefined, counter);
  },

  recordNumberMasker(
    cipher: "aes" | "chacha20",
    key: Uint8Array,
  ): (sample: Uint8Array) => Uint8Array {
    // noble's ciphers are one use each: keyed per record.
    return (sample) => nobleProvider.recordNumberMask(cipher, key, sample);
  },

  runningHash(hash: HashName): RunningHash {
    return nobleRunningHash(hash);
  },

  aead(name: AeadName, key: Uint8Array): Aead {
    switch (name) {
      case "aes-gcm":
        checkAesKey("AES-GCM", key);
        return new NobleAead(gcm, key);
      case "chacha20-poly1305":
        if (key.length !== 32) {
          throw new TypeError(`Cannot create ChaCha20-Poly1305: key of ${key.length} bytes`);
        }
        return new NobleAead(chacha20poly1305, key);
      case "aes-ccm":
        return aesCcm(key, 16);
      case "aes-ccm-8":
        return aesCcm(key, 8);
      default: {
        const unknown: never = name;
        throw new TypeError(`Cannot create AEAD: unknown algorithm ${String(unknown)}`);
      }
    }
  },

  cbc(key: Uint8Array): CbcCipher {
    return new NobleCbc(key);
  },

  keyShare(group: GroupName, random: RandomSource): KeyShare {
    switch (group) {
      case "x25519":
        return new X25519Share(random);
      case "secp256r1":
      case "secp384r1":
        return new NistShare(group, random);
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
