/**
 * A deterministic random source for tests: SHA-256 in counter mode over a seed.
 * Not for production; it makes every handshake in a test repeatable.
 */

import { sha256 } from "@noble/hashes/sha2.js";
import type { RandomSource } from "../../src/crypto/provider.ts";

/** A RandomSource that yields the same bytes for the same seed. */
export function seededRandom(seed: string | number): RandomSource {
  const seedBytes = new TextEncoder().encode(String(seed));
  let counter = 0;
  let pool = new Uint8Array(0);
  let at = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      if (at === pool.length) {
        const input = new Uint8Array(seedBytes.length + 4);
        input.set(seedBytes);
        new DataView(input.buffer).setUint32(seedBytes.length, counter++);
        pool = sha256(input);
        at = 0;
      }
      out[i] = pool[at++]!;
    }
    return out;
  };
}
