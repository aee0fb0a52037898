/**
 * The TLS 1.2 pseudorandom function (RFC 5246 §5), which DTLS 1.2 uses
 * unchanged (RFC 6347 §4.2) for the master secret, the key block and
 * Finished.verify_data.
 *
 * @module
 */

import type { CryptoProvider, HashName } from "./provider.ts";

const encoder = new TextEncoder();
/** The encoded labels: a handful of fixed strings, each used on every handshake. */
const LABELS = new Map<string, Uint8Array>();

/**
 * PRF(secret, label, seed) = P_<hash>(secret, label + seed), truncated to
 * `length` bytes (RFC 5246 §5), where
 *
 *     P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) +
 *                            HMAC_hash(secret, A(2) + seed) + ...
 *     A(0) = seed, A(i) = HMAC_hash(secret, A(i-1))
 *
 * The HMAC is keyed once for the whole expansion. `label` is ASCII (the RFC
 * labels, e.g. "master secret", "key expansion"), included without a length
 * byte or trailing NUL.
 */
export function prf(
  provider: CryptoProvider,
  hash: HashName,
  secret: Uint8Array,
  label: string,
  seed: Uint8Array,
  length: number,
): Uint8Array {
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`Cannot compute PRF: invalid length ${length}`);
  }
  let labelBytes = LABELS.get(label);
  if (labelBytes === undefined) {
    labelBytes = encoder.encode(label);
    // Bounded: the RFC labels fit many times over; a caller's own are not kept.
    if (LABELS.size < 16) LABELS.set(label, labelBytes);
  }
  const labelSeed = new Uint8Array(labelBytes.length + seed.length);
  labelSeed.set(labelBytes);
  labelSeed.set(seed, labelBytes.length);

  const mac = provider.hmac(hash, secret);
  const out = new Uint8Array(length);
  let a: Uint8Array = labelSeed; // A(0)
  for (let at = 0; at < length;) {
    a = mac.compute(a); // A(i)
    const block = mac.compute(a, labelSeed);
    const n = Math.min(block.length, length - at);
    out.set(n === block.length ? block : block.subarray(0, n), at);
    at += n;
  }
  return out;
}
