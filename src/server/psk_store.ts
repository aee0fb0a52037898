/**
 * Where PSKs come from: a key file in GnuTLS `psktool` format
 * (`identity:hexkey` per line, `#` comments), the environment, or the Qt
 * example's demo credentials.
 *
 * @module
 */

import { byteString } from "../codec/byte_string.ts";
import { fromHex } from "../codec/hex.ts";
import { safeText } from "./log_text.ts";

/** The Qt DTLS example's identity hint. */
export const DEMO_IDENTITY_HINT = "Qt DTLS example server";
/** The Qt DTLS example's client identity. */
export const DEMO_CLIENT_IDENTITY = "Qt DTLS example client";
/** The Qt DTLS example's key, as hex (a demo value, published in Qt's docs). */
export const DEMO_KEY_HEX = "1a2b3c4d5e6f";

/** Looks up the key of an identity. */
export interface PskStore {
  /** "demo": any identity gets the demo key; "keys": only listed identities. */
  readonly kind: "demo" | "keys";
  /**
   * The key for an identity as the peer sent it, matched byte for byte, or
   * undefined. No text decoding: one that drops a BOM or turns invalid
   * UTF-8 into U+FFFD would give one key to two identities.
   */
  lookup(identity: Uint8Array): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /**
   * True when `lookup` answers with a promise (a database, a key service):
   * the server then bounds how many are in flight and how long each may
   * take, and a handshake waiting on its key holds up no other peer.
   */
  readonly asynchronous?: boolean;
  /** How many identities are known (0 for demo, or when the store cannot tell). */
  readonly size: number;
  /**
   * The length of most of its keys: an unknown identity carries on with a
   * random key this long, so that its key schedule costs what a known
   * identity's does (HMAC hashes a key longer than its block first).
   */
  readonly typicalKeyLength: number;
}

/**
 * A store that asks `lookup` for each identity's key, which answers later
 * (undefined: unknown identity), as Californium's AdvancedPskStore does.
 * `typicalKeyLength` is the length an unknown identity's random key takes.
 */
export function asyncPskStore(
  lookup: (identity: Uint8Array) => Promise<Uint8Array | undefined>,
  typicalKeyLength = 32,
): PskStore {
  return { kind: "keys", asynchronous: true, size: 0, lookup, typicalKeyLength };
}

/** The Qt example's behaviour: every identity gets the demo key. */
export function demoPskStore(): PskStore {
  const key = parseHexKey(DEMO_KEY_HEX, "demo key");
  return { kind: "demo", size: 0, lookup: () => key, typicalKeyLength: key.length };
}

/**
 * A store holding exactly these identities, each matched as its UTF-8 bytes.
 * Throws for an identity with a lone surrogate, which has no UTF-8 form.
 */
export function mapPskStore(keys: ReadonlyMap<string, Uint8Array>): PskStore {
  const byBytes = new Map<string, Uint8Array>();
  for (const [identity, key] of keys) {
    if (!identity.isWellFormed()) {
      const shown = safeText(identity);
      throw new TypeError(`Cannot use PSK identity "${shown}": not well-formed Unicode`);
    }
    byBytes.set(byteString(encoder.encode(identity)), key);
  }
  return {
    kind: "keys",
    size: byBytes.size,
    lookup: (identity) => byBytes.get(byteString(identity)),
    typicalKeyLength: mostCommonLength(byBytes.values()),
  };
}

const encoder = new TextEncoder();

/** Parses a hex key; throws "Cannot parse <what>: reason" (never echoing the key). */
export function parseHexKey(hex: string, what: string): Uint8Array {
  const key = fromHex(hex);
  if (key === undefined || key.length === 0) {
    throw new TypeError(`Cannot parse ${what}: not an even number of hex digits`);
  }
  return key;
}

/**
 * Parses a psktool-format key file. Errors name the line, never the key.
 * The identity is everything before the last colon, so identities may
 * contain colons; hex keys cannot.
 */
export function parsePskFile(text: string, source = "PSK file"): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.lastIndexOf(":");
    if (colon <= 0) {
      throw new TypeError(`Cannot parse ${source} line ${i + 1}: expected identity:hexkey`);
    }
    const identity = line.slice(0, colon);
    const key = parseHexKey(line.slice(colon + 1).trim(), `${source} line ${i + 1} key`);
    if (keys.has(identity)) {
      throw new TypeError(`Cannot parse ${source} line ${i + 1}: duplicate identity "${identity}"`);
    }
    keys.set(identity, key);
  }
  if (keys.size === 0) throw new TypeError(`Cannot parse ${source}: no keys`);
  return keys;
}

/** The most common length among `keys` (the shortest of equals); 32 for none. */
function mostCommonLength(keys: Iterable<Uint8Array>): number {
  const counts = new Map<number, number>();
  for (const key of keys) counts.set(key.length, (counts.get(key.length) ?? 0) + 1);
  let best = 32;
  let most = 0;
  for (const [length, count] of counts) {
    if (count > most || (count === most && length < best)) [best, most] = [length, count];
  }
  return best;
}
