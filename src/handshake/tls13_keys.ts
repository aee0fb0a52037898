/**
 * The TLS 1.3 key schedule (RFC 8446 §7.1) as DTLS 1.3 uses it (RFC 9147
 * §5.9: the labels start with "dtls13" instead of "tls13 "), built on the
 * provider's HMAC: HKDF-Extract and HKDF-Expand (RFC 5869),
 * HKDF-Expand-Label, Derive-Secret, and the secrets and keys derived from
 * them, each a function of its inputs.
 *
 *               0
 *               |
 *     PSK ->  HKDF-Extract = Early Secret --> binder key ("ext binder")
 *               |
 *         Derive-Secret(., "derived", "")
 *               |
 *    (EC)DHE -> HKDF-Extract = Handshake Secret --> c/s hs traffic
 *               |
 *         Derive-Secret(., "derived", "")
 *               |
 *       0 ->  HKDF-Extract = Master Secret --> c/s ap traffic, res master
 *
 * @module
 */

import type { CryptoProvider, HashName, Mac } from "../crypto/provider.ts";
import { fromHex } from "../codec/hex.ts";

/** The label prefix of DTLS 1.3 (RFC 9147 §5.9). */
export const DTLS13_LABEL_PREFIX = "dtls13";
/** The label prefix of TLS 1.3 (RFC 8446 §7.1): for checking against RFC 8448's traces. */
export const TLS13_LABEL_PREFIX = "tls13 ";

/** Bytes of a hash's output. */
export function hashLength(hash: HashName): number {
  return hash === "sha256" ? 32 : 48;
}

const encoder = new TextEncoder();
/** An empty HKDF-Expand-Label context. */
const NO_CONTEXT = new Uint8Array(0);

/** HKDF-Extract(salt, IKM) (RFC 5869 §2.2): an empty salt is a hash length of zeros. */
export function hkdfExtract(
  provider: CryptoProvider,
  hash: HashName,
  salt: Uint8Array,
  ikm: Uint8Array,
): Uint8Array {
  const key = salt.length === 0 ? new Uint8Array(hashLength(hash)) : salt;
  return provider.hmac(hash, key).compute(ikm);
}

/**
 * HMACs keyed with a secret, kept while the secret lives: keying costs two
 * of the hash's blocks, two thirds of a short HKDF-Expand, and one secret
 * keys several (a traffic secret: key, iv and sn; a stage's secret: both
 * traffic secrets and the next stage). An entry is used only for the same
 * provider, hash and bytes, so a secret changed in place is keyed afresh.
 */
const KEYED = new WeakMap<
  Uint8Array,
  { provider: CryptoProvider; hash: HashName; key: Uint8Array; mac: Mac }
>();

function keyedMac(provider: CryptoProvider, hash: HashName, secret: Uint8Array): Mac {
  const cached = KEYED.get(secret);
  if (
    cached !== undefined && cached.provider === provider && cached.hash === hash &&
    cached.key.length === secret.length && cached.key.every((b, i) => b === secret[i])
  ) {
    return cached.mac;
  }
  const mac = provider.hmac(hash, secret);
  KEYED.set(secret, { provider, hash, key: secret.slice(), mac });
  return mac;
}

/** HKDF-Expand(PRK, info, L) (RFC 5869 §2.3). */
export function hkdfExpand(
  provider: CryptoProvider,
  hash: HashName,
  prk: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  const size = hashLength(hash);
  if (!(Number.isInteger(length) && length > 0 && length <= 255 * size)) {
    throw new RangeError(`Cannot expand ${length} bytes with ${hash}`);
  }
  const mac = keyedMac(provider, hash, prk);
  const out = new Uint8Array(length);
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++) {
    previous = mac.compute(previous, info, new Uint8Array([i]));
    out.set(previous.subarray(0, Math.min(size, length - at)), at);
    at += size;
  }
  return out;
}

/**
 * HKDF-Expand-Label(Secret, Label, Context, Length) (RFC 8446 §7.1):
 *
 *     struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel;
 *
 * with `label` = prefix + Label: "dtls13" for DTLS 1.3 (RFC 9147 §5.9).
 */
export function hkdfExpandLabel(
  provider: CryptoProvider,
  hash: HashName,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
  prefix = DTLS13_LABEL_PREFIX,
): Uint8Array {
  const fullLabel = encoder.encode(prefix + label);
  if (fullLabel.length > 255 || context.length > 255 || length > 0xffff) {
    throw new RangeError(`Cannot expand label ${label}: a field out of range`);
  }
  const info = new Uint8Array(2 + 1 + fullLabel.length + 1 + context.length);
  info[0] = length >>> 8;
  info[1] = length & 0xff;
  info[2] = fullLabel.length;
  info.set(fullLabel, 3);
  info[3 + fullLabel.length] = context.length;
  info.set(context, 4 + fullLabel.length);
  return hkdfExpand(provider, hash, secret, info, length);
}

/** Derive-Secret(Secret, Label, Messages) (RFC 8446 §7.1), given Transcript-Hash(Messages). */
export function deriveSecret(
  provider: CryptoProvider,
  hash: HashName,
  secret: Uint8Array,
  label: string,
  transcriptHash: Uint8Array,
  prefix = DTLS13_LABEL_PREFIX,
): Uint8Array {
  return hkdfExpandLabel(
    provider,
    hash,
    secret,
    label,
    transcriptHash,
    hashLength(hash),
    prefix,
  );
}

/** The hash of no messages: Derive-Secret(., "derived", "") hashes the empty string. */
export function emptyHash(_provider: CryptoProvider, hash: HashName): Uint8Array {
  return (hash === "sha256" ? EMPTY_SHA256 : EMPTY_SHA384).slice();
}

/** SHA-256("") and SHA-384("") (FIPS 180-4's empty-message digests, checked by the tests). */
const EMPTY_SHA256 = fromHex(
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
)!;
const EMPTY_SHA384 = fromHex(
  "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
)!;

/** The secret the next stage is extracted from: Derive-Secret(secret, "derived", ""). */
export function derivedSecret(
  provider: CryptoProvider,
  hash: HashName,
  secret: Uint8Array,
  prefix = DTLS13_LABEL_PREFIX,
): Uint8Array {
  return deriveSecret(provider, hash, secret, "derived", emptyHash(provider, hash), prefix);
}

/** A traffic secret's record protection keys (RFC 8446 §7.3, RFC 9147 §4.2.3). */
export interface TrafficKeys {
  /** The AEAD key. */
  readonly key: Uint8Array;
  /** The per-record nonce's base. */
  readonly iv: Uint8Array;
  /** The key that encrypts record sequence numbers (RFC 9147 §4.2.3). */
  readonly snKey: Uint8Array;
}

/** The write key, IV and record-number key of a traffic secret. */
export function trafficKeys(
  provider: CryptoProvider,
  hash: HashName,
  secret: Uint8Array,
  keyLength: number,
  prefix = DTLS13_LABEL_PREFIX,
): TrafficKeys {
  return {
    key: hkdfExpandLabel(provider, hash, secret, "key", NO_CONTEXT, keyLength, prefix),
    iv: hkdfExpandLabel(provider, hash, secret, "iv", NO_CONTEXT, 12, prefix),
    snKey: hkdfExpandLabel(provider, hash, secret, "sn", NO_CONTEXT, keyLength, prefix),
  };
}

/** finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length) (RFC 8446 §4.4.4). */
export function finishedKey(
  provider: CryptoProvider,
  hash: HashName,
  baseKey: Uint8Array,
  prefix = DTLS13_LABEL_PREFIX,
): Uint8Array {
  // Derive-Secret's shape: a hash length, here with an empty context.
  return deriveSecret(provider, hash, baseKey, "finished", NO_CONTEXT, prefix);
}

/** verify_data (or a PSK binder) = HMAC(finished_key, transcript hash) (RFC 8446 §4.4.4, §4.2.11.2). */
export function finishedMac(
  provider: CryptoProvider,
  hash: HashName,
  key: Uint8Array,
  transcriptHash: Uint8Array,
): Uint8Array {
  return provider.hmac(hash, key).compute(transcriptHash);
}

/** The next generation of a traffic secret (RFC 8446 §7.2: KeyUpdate). */
export function nextTrafficSecret(
  provider: CryptoProvider,
  hash: HashName,
  secret: Uint8Array,
  prefix = DTLS13_LABEL_PREFIX,
): Uint8Array {
  return deriveSecret(provider, hash, secret, "traffic upd", NO_CONTEXT, prefix);
}
