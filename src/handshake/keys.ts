/**
 * The TLS 1.2 key schedule as used by DTLS 1.2 with PSK (RFC 5246 §8.1, §6.3;
 * RFC 4279 §2; RFC 5489 §2; RFC 7627 §4).
 *
 * @module
 */

import type { CryptoProvider, HashName, RunningHash } from "../crypto/provider.ts";
import { prf } from "../crypto/prf.ts";
import type { RecordKeys } from "../record/protection.ts";
import type { CipherSuite } from "../record/suites.ts";

/**
 * The premaster secret of plain PSK (RFC 4279 §2): the "other secret" is N
 * zero bytes, N being the PSK length.
 */
export function pskPremaster(psk: Uint8Array): Uint8Array {
  return premaster(new Uint8Array(psk.length), psk);
}

/**
 * The premaster secret of ECDHE_PSK (RFC 5489 §2): the "other secret" is the
 * ECDH shared secret.
 */
export function ecdhePskPremaster(sharedSecret: Uint8Array, psk: Uint8Array): Uint8Array {
  return premaster(sharedSecret, psk);
}

function premaster(other: Uint8Array, psk: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + other.length + psk.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, other.length);
  out.set(other, 2);
  v.setUint16(2 + other.length, psk.length);
  out.set(psk, 4 + other.length);
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The master secret. With extended_master_secret (RFC 7627 §4) it is bound to
 * the hash of the handshake up to and including ClientKeyExchange; otherwise
 * to the two randoms (RFC 5246 §8.1).
 */
export function masterSecret(
  provider: CryptoProvider,
  hash: HashName,
  premasterSecret: Uint8Array,
  binding:
    | { readonly extended: true; readonly sessionHash: Uint8Array }
    | {
      readonly extended: false;
      readonly clientRandom: Uint8Array;
      readonly serverRandom: Uint8Array;
    },
): Uint8Array {
  return binding.extended
    ? prf(provider, hash, premasterSecret, "extended master secret", binding.sessionHash, 48)
    : prf(
      provider,
      hash,
      premasterSecret,
      "master secret",
      concat(binding.clientRandom, binding.serverRandom),
      48,
    );
}

/** The keys of both directions (RFC 5246 §6.3). */
export interface KeyBlock {
  /** What the client writes with (and the server reads with). */
  readonly client: RecordKeys;
  /** What the server writes with. */
  readonly server: RecordKeys;
}

/** Expands the master secret into the key block, in the RFC's order. */
export function keyBlock(
  provider: CryptoProvider,
  suite: CipherSuite,
  master: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
): KeyBlock {
  const mac = suite.macKeyLength, key = suite.keyLength, iv = suite.fixedIvLength;
  const block = prf(
    provider,
    suite.prfHash,
    master,
    "key expansion",
    concat(serverRandom, clientRandom),
    2 * (mac + key + iv),
  );
  // Views of the one block: the two directions' keys then share one buffer,
  // which is all an idle connection keeps of them.
  let at = 0;
  const take = (n: number) => block.subarray(at, at += n);
  const clientMac = take(mac), serverMac = take(mac);
  const clientKey = take(key), serverKey = take(key);
  const clientIv = take(iv), serverIv = take(iv);
  return {
    client: { key: clientKey, fixedIv: clientIv, macKey: clientMac },
    server: { key: serverKey, fixedIv: serverIv, macKey: serverMac },
  };
}

/** Finished.verify_data (RFC 5246 §7.4.9): 12 bytes. */
export function verifyData(
  provider: CryptoProvider,
  hash: HashName,
  master: Uint8Array,
  sender: "client" | "server",
  transcriptHash: Uint8Array,
): Uint8Array {
  return prf(provider, hash, master, `${sender} finished`, transcriptHash, 12);
}

/**
 * The handshake transcript (RFC 6347 §4.2.6): every handshake message as if
 * sent unfragmented, header included, except the first ClientHello and the
 * HelloVerifyRequest.
 */
export class Transcript {
  /** Messages kept until the hash is known (a client before ServerHello). */
  #parts: Uint8Array[] = [];
  #running: { readonly name: HashName; readonly state: RunningHash } | undefined;

  /**
   * Hashes with `hash` from now on, as messages come, and keeps none of
   * them: a handshake waiting for its peer holds a hash state, not the
   * peer's ClientHello. Call once the suite (and so the PRF hash) is chosen.
   */
  start(provider: CryptoProvider, hash: HashName): void {
    if (this.#running !== undefined) return;
    const state = provider.runningHash(hash);
    for (const part of this.#parts) state.update(part);
    this.#parts = [];
    this.#running = { name: hash, state };
  }

  /** Appends one whole message (12-byte DTLS header + body). */
  add(message: Uint8Array): void {
    if (this.#running !== undefined) this.#running.state.update(message);
    else this.#parts.push(message);
  }

  /** Forgets everything (a ClientHello that got a HelloVerifyRequest). */
  reset(): void {
    this.#parts = [];
    this.#running = undefined;
  }

  /** The hash of everything so far. */
  hash(provider: CryptoProvider, hash: HashName): Uint8Array {
    if (this.#running === undefined) return provider.hash(hash, concat(...this.#parts));
    if (this.#running.name !== hash) {
      throw new Error(`Cannot hash transcript with ${hash}: it runs with ${this.#running.name}`);
    }
    return this.#running.state.digest();
  }
}
