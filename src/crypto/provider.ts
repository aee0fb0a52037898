/**
 * The crypto provider seam: every primitive the engine needs, behind one small
 * interface, so a faster provider (e.g. Deno's built-in crypto) can replace the
 * portable `@noble` one and be checked against the same vectors.
 *
 * The record layer builds nonces and AAD itself; a provider only sees keys and
 * bytes.
 *
 * @module
 */

/** Hash functions used by the TLS 1.2 PRF, HMAC and Finished. */
export type HashName = "sha256" | "sha384";

/** The AEAD algorithms of the supported suites. */
export type AeadName = "aes-gcm" | "chacha20-poly1305" | "aes-ccm" | "aes-ccm-8";

/** ECDHE groups (RFC 8422 NamedGroup). */
export type GroupName = "x25519" | "secp256r1" | "secp384r1";

/** A keyed AEAD instance; keyed state (key schedule, tables) is built once. */
export interface Aead {
  /** Tag bytes appended to the ciphertext. */
  readonly tagLength: number;
  /** Returns ciphertext || tag. */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /**
   * Writes ciphertext || tag to `out` from `at` (plaintext.length + tagLength
   * bytes), for a record layer that builds the whole record in one array.
   * Extending {@link InPlaceAead} gives `seal` from it.
   */
  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    at: number,
  ): void;
  /** Returns the plaintext, or null when authentication fails. Never throws on bad input. */
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}

/** Raw AES-CBC without padding, keyed once (TLS does its own padding). */
export interface CbcCipher {
  /** `data.length` must be a multiple of 16. */
  encrypt(iv: Uint8Array, data: Uint8Array): Uint8Array;
  /** `data.length` must be a multiple of 16. */
  decrypt(iv: Uint8Array, data: Uint8Array): Uint8Array;
}

/** A hash fed piece by piece, whose digest so far can be read at any point. */
export interface RunningHash {
  /** Hashes `data` after what came before. */
  update(data: Uint8Array): void;
  /** The digest of everything so far; the hash goes on. */
  digest(): Uint8Array;
}

/** A keyed HMAC, keyed state reused across calls. */
export interface Mac {
  /** Output bytes. */
  readonly length: number;
  /** HMAC over the concatenation of `parts`. */
  compute(...parts: Uint8Array[]): Uint8Array;
}

/** One ephemeral key pair for one handshake. */
export interface KeyShare {
  /** The public value as sent on the wire (X25519: 32 bytes; P-256: uncompressed point). */
  readonly publicKey: Uint8Array;
  /** The shared secret with the peer's public value, or null when the value is invalid. */
  sharedSecret(peerPublic: Uint8Array): Uint8Array | null;
}

/** A source of cryptographically strong random bytes (injected; seeded in tests). */
export type RandomSource = (n: number) => Uint8Array;

/** A handshake signature algorithm, by its TLS name (RFC 8446 §4.2.3; TLS 1.2 hash/signature pairs). */
export type SignatureScheme =
  | "ecdsa_secp256r1_sha256"
  | "ecdsa_secp384r1_sha384"
  | "rsa_pss_rsae_sha256"
  | "rsa_pss_rsae_sha384"
  | "rsa_pkcs1_sha256"
  | "rsa_pkcs1_sha384";

/** A signature over data fed piece by piece: the handshake messages a CertificateVerify covers. */
export interface TranscriptSignature {
  /** Feeds the next message. */
  update(data: Uint8Array): void;
  /** Whether `signature` of `scheme` over all that was fed verifies under `spki` (false, never a throw). */
  verify(spki: Uint8Array, scheme: SignatureScheme, signature: Uint8Array): boolean;
  /** A signature of all that was fed, by `key` with `scheme`. */
  sign(key: SigningKey, scheme: SignatureScheme): Uint8Array;
}

/** A private key that signs handshakes (the key of a certificate). */
export interface SigningKey {
  /** EC (P-256 or P-384) or RSA. */
  readonly type: "ec" | "rsa";
  /** An EC key's curve, as the group that names it. */
  readonly curve?: "secp256r1" | "secp384r1";
  /** The schemes it signs with, preferred first. */
  readonly schemes: readonly SignatureScheme[];
  /** A signature of `data` (ECDSA: DER-encoded, RFC 8422 §5.4). */
  sign(scheme: SignatureScheme, data: Uint8Array): Uint8Array;
}

/** Every primitive the DTLS engine uses. */
export interface CryptoProvider {
  /** Provider name, for logs and benchmarks. */
  readonly name: string;
  /** A hash digest. */
  hash(hash: HashName, data: Uint8Array): Uint8Array;
  /** A hash to feed piece by piece (the handshake transcript). */
  runningHash(hash: HashName): RunningHash;
  /** A keyed HMAC. */
  hmac(hash: HashName, key: Uint8Array): Mac;
  /**
   * The mask of a DTLS 1.3 record number (RFC 9147 §4.2.3), 16 bytes, from
   * a 16-byte sample of the record's ciphertext: AES-ECB of the sample under
   * `key` for the AES suites; for ChaCha20, the ChaCha20 keystream under
   * `key` with the sample's first 4 bytes as the block counter (little
   * endian) and the other 12 as the nonce.
   */
  recordNumberMask(cipher: "aes" | "chacha20", key: Uint8Array, sample: Uint8Array): Uint8Array;
  /**
   * {@link recordNumberMask} keyed once, for the records of one epoch: what
   * can be kept from one record to the next (a keyed AES-ECB) is.
   */
  recordNumberMasker(
    cipher: "aes" | "chacha20",
    key: Uint8Array,
  ): (sample: Uint8Array) => Uint8Array;
  /**
   * A keyed AEAD (key length selects AES-128/256). It may keep `key` itself
   * rather than a copy: the caller must not change it afterwards.
   */
  aead(name: AeadName, key: Uint8Array): Aead;
  /** A keyed AES-CBC cipher. */
  cbc(key: Uint8Array): CbcCipher;
  /** A fresh ephemeral key pair, its private part drawn from `random`. */
  keyShare(group: GroupName, random: RandomSource): KeyShare;
  /** A signing key from its PKCS#8 DER encoding; throws a TypeError for a key we cannot use. */
  signingKey(pkcs8: Uint8Array): SigningKey;
  /** A signature over the handshake messages to come (CertificateVerify), to make or to check. */
  transcriptSignature(role: "sign" | "verify"): TranscriptSignature;
  /**
   * Whether `signature` over `data` verifies with `scheme` under the DER
   * SubjectPublicKeyInfo `spki`; false (never a throw) for anything malformed.
   */
  verify(
    spki: Uint8Array,
    scheme: SignatureScheme,
    data: Uint8Array,
    signature: Uint8Array,
  ): boolean;
}

/** Throws unless `out[at..at+length)` is there. */
export function checkSealRange(out: Uint8Array, at: number, length: number): void {
  if (!(at >= 0 && at + length <= out.length)) {
    throw new RangeError(`Cannot seal into ${out.length} bytes at ${at}: ${length} needed`);
  }
}

/** `out[at..at+length)`, checked to be there, as its own view. */
export function sealTarget(out: Uint8Array, at: number, length: number): Uint8Array {
  checkSealRange(out, at, length);
  return at === 0 && length === out.length ? out : out.subarray(at, at + length);
}

/**
 * An AEAD that writes in place: `seal` is `sealInto` a new array, so each
 * implementation writes its output in one place only.
 */
export abstract class InPlaceAead implements Aead {
  abstract readonly tagLength: number;

  abstract sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    at: number,
  ): void;

  abstract open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;

  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const out = new Uint8Array(plaintext.length + this.tagLength);
    this.sealInto(nonce, aad, plaintext, out, 0);
    return out;
  }
}

/** Throws unless `sample` is the 16 bytes a record number's mask is made from. */
export function checkMaskSample(sample: Uint8Array): void {
  if (sample.length !== 16) {
    throw new RangeError(
      `Cannot mask a record number: sample of ${sample.length} bytes, 16 needed`,
    );
  }
}
