/**
 * The server's session cache for resumption by session ID (RFC 5246
 * §7.4.1.2): bounded in entries, least recently used evicted first, each
 * entry good for a lifetime counted from its full handshake.
 *
 * @module
 */

import { byteString } from "../codec/byte_string.ts";
import type { Session } from "./session.ts";

/** Bytes a session ID has when we make one. */
export const SESSION_ID_LENGTH = 32;

/** A bounded, least-recently-used map from session ID to session. */
export class SessionCache {
  readonly #maxEntries: number;
  readonly #lifetimeMs: number;
  /** Keyed by the ID's bytes one character each; Map order is use order, oldest first. */
  readonly #entries = new Map<string, Session>();

  constructor(options: { readonly maxEntries: number; readonly lifetimeMs: number }) {
    if (!(Number.isInteger(options.maxEntries) && options.maxEntries >= 0)) {
      throw new RangeError(`Cannot make a session cache of ${options.maxEntries} entries`);
    }
    this.#maxEntries = options.maxEntries;
    this.#lifetimeMs = options.lifetimeMs;
  }

  /** Sessions held now (expired ones count until they are met or pushed out). */
  get size(): number {
    return this.#entries.size;
  }

  /** Most sessions held at once. */
  get maxEntries(): number {
    return this.#maxEntries;
  }

  /** The session with this ID, unless it is unknown or expired (then it is forgotten). */
  get(id: Uint8Array, now: number): Session | undefined {
    const key = byteString(id);
    const session = this.#entries.get(key);
    if (session === undefined) return undefined;
    this.#entries.delete(key);
    if (!isLive(session, now, this.#lifetimeMs)) return undefined;
    this.#entries.set(key, session);
    return session;
  }

  /** Remembers a session, pushing out expired ones and then the least recently used. */
  set(id: Uint8Array, session: Session, now: number): void {
    if (this.#maxEntries === 0) return;
    const key = byteString(id);
    this.#entries.delete(key);
    for (const [oldKey, old] of this.#entries) {
      if (this.#entries.size < this.#maxEntries && isLive(old, now, this.#lifetimeMs)) break;
      this.#entries.delete(oldKey);
    }
    this.#entries.set(key, session);
  }

  /** Forgets a session (its handshake failed, or it is to be resumed no more). */
  delete(id: Uint8Array): void {
    this.#entries.delete(byteString(id));
  }
}

/** Whether a session issued at `issuedAt` may still be resumed at `now`. */
export function isLive(session: Session, now: number, lifetimeMs: number): boolean {
  const age = now - session.issuedAt;
  // A clock set back makes a negative age: still good, up to a lifetime back.
  return age < lifetimeMs && age > -lifetimeMs;
}
