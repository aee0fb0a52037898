/**
 * Stateless session tickets (RFC 5077): a session sealed with an AEAD
 * (AES-256-GCM) under a ticket key the server alone holds, so that any
 * instance holding the same keys resumes it and none keeps state for it.
 *
 *     ticket = key_name (16) || nonce (12) || AES-256-GCM(session, aad = key_name)
 *
 * Ticket keys come from secrets of 32 to 64 random bytes (a line of
 * `openssl rand -hex 32`): each names its key and makes its AEAD key by
 * HMAC-SHA256 with a fixed label, so a file holds nothing but the secrets.
 * The first key seals; every key opens, so keys can rotate while tickets
 * sealed under the old one are still out.
 *
 * @module
 */

import { byteString } from "../codec/byte_string.ts";
import type { Aead, CryptoProvider, RandomSource } from "../crypto/provider.ts";
import { fromHex } from "../codec/hex.ts";
import { decodeSession, encodeSession, type Session } from "./session.ts";
import { isLive } from "./session_cache.ts";

/** Bytes of a ticket's key name (RFC 5077 §4's recommendation). */
export const KEY_NAME_LENGTH = 16;
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
/** Shortest and longest ticket key secret, bytes. */
export const MIN_TICKET_SECRET = 32;
export const MAX_TICKET_SECRET = 64;
/** Most keys a ticket key file may hold. */
export const MAX_TICKET_KEYS = 64;
/** Longest ticket we try to open, bytes (a session with a long identity and subject fits). */
export const MAX_TICKET_LENGTH = 4096;

/** Why a ticket was not resumed. */
export type TicketRefusal =
  /** Not a ticket of ours: too short or too long. */
  | "malformed"
  /** Sealed under a key we do not hold (rotated away, or another server's). */
  | "unknown_key"
  /** It does not authenticate under the key its name says: altered or forged. */
  | "invalid"
  /** Its session is older than the lifetime. */
  | "expired"
  /** Its PSK identity is no longer in the key store, or has another key now. */
  | "identity_unknown"
  /** Its session does not fit this ClientHello or today's policy (suite, extensions, client authentication). */
  | "mismatch";

/** A ticket key, derived from its secret. */
interface TicketKey {
  /** The key name, one character a byte (a map key). */
  readonly name: string;
  readonly nameBytes: Uint8Array;
  readonly aead: Aead;
}

const encoder = new TextEncoder();
const NAME_LABEL = encoder.encode("dtls-server ticket key name");
const AEAD_LABEL = encoder.encode("dtls-server ticket aead key");

/** Seals sessions into tickets and opens them again. */
export class TicketSealer {
  readonly #provider: CryptoProvider;
  readonly #random: RandomSource;
  readonly #lifetimeMs: number;
  #keys: TicketKey[] = [];
  #byName = new Map<string, TicketKey>();

  /** `secrets`: the ticket keys, the first one sealing. */
  constructor(options: {
    readonly provider: CryptoProvider;
    readonly random: RandomSource;
    readonly lifetimeMs: number;
    readonly secrets: readonly Uint8Array[];
  }) {
    this.#provider = options.provider;
    this.#random = options.random;
    this.#lifetimeMs = options.lifetimeMs;
    this.setSecrets(options.secrets);
  }

  /** The lifetime a ticket is good for, ms. */
  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  /** Ticket keys held. */
  get keyCount(): number {
    return this.#keys.length;
  }

  /** Replaces the ticket keys (a reload); the first one seals from now on. */
  setSecrets(secrets: readonly Uint8Array[]): void {
    if (secrets.length === 0 || secrets.length > MAX_TICKET_KEYS) {
      throw new RangeError(`Cannot use ${secrets.length} ticket keys: 1 to ${MAX_TICKET_KEYS}`);
    }
    const keys = secrets.map((secret) => this.#derive(secret));
    this.#keys = keys;
    this.#byName = new Map(keys.map((k) => [k.name, k]));
  }

  #derive(secret: Uint8Array): TicketKey {
    if (secret.length < MIN_TICKET_SECRET || secret.length > MAX_TICKET_SECRET) {
      throw new RangeError(
        `Cannot use a ticket key of ${secret.length} bytes: ${MIN_TICKET_SECRET} to ${MAX_TICKET_SECRET}`,
      );
    }
    const mac = this.#provider.hmac("sha256", secret);
    const nameBytes = mac.compute(NAME_LABEL).slice(0, KEY_NAME_LENGTH);
    const aead = this.#provider.aead("aes-gcm", mac.compute(AEAD_LABEL));
    return { name: byteString(nameBytes), nameBytes, aead };
  }

  /** A ticket for `session`, sealed under the first key. */
  seal(session: Session): Uint8Array {
    const key = this.#keys[0]!;
    const nonce = this.#random(NONCE_LENGTH);
    const plaintext = encodeSession(session);
    const sealed = key.aead.seal(nonce, key.nameBytes, plaintext);
    plaintext.fill(0);
    const ticket = new Uint8Array(KEY_NAME_LENGTH + NONCE_LENGTH + sealed.length);
    ticket.set(key.nameBytes, 0);
    ticket.set(nonce, KEY_NAME_LENGTH);
    ticket.set(sealed, KEY_NAME_LENGTH + NONCE_LENGTH);
    return ticket;
  }

  /**
   * Whether `ticket` names one of our keys (its first 16 bytes): what tells a
   * ticket of ours from a PSK identity, whatever their lengths. A map lookup,
   * no cryptography.
   */
  namesOurKey(ticket: Uint8Array): boolean {
    return ticket.length >= KEY_NAME_LENGTH + NONCE_LENGTH + TAG_LENGTH &&
      this.#byName.has(byteString(ticket.subarray(0, KEY_NAME_LENGTH)));
  }

  /** The session a ticket holds at `now`, or why it cannot be resumed. */
  open(
    ticket: Uint8Array,
    now: number,
  ): { readonly session: Session } | { readonly refused: TicketRefusal } {
    if (
      ticket.length < KEY_NAME_LENGTH + NONCE_LENGTH + TAG_LENGTH ||
      ticket.length > MAX_TICKET_LENGTH
    ) {
      return { refused: "malformed" };
    }
    const key = this.#byName.get(byteString(ticket.subarray(0, KEY_NAME_LENGTH)));
    if (key === undefined) return { refused: "unknown_key" };
    const nonce = ticket.subarray(KEY_NAME_LENGTH, KEY_NAME_LENGTH + NONCE_LENGTH);
    const plaintext = key.aead.open(
      nonce,
      key.nameBytes,
      ticket.subarray(KEY_NAME_LENGTH + NONCE_LENGTH),
    );
    if (plaintext === null) return { refused: "invalid" };
    const session = decodeSession(plaintext);
    plaintext.fill(0);
    // Authenticated yet unreadable: sealed by a build with another format.
    if (session === undefined) return { refused: "invalid" };
    if (!isLive(session, now, this.#lifetimeMs)) return { refused: "expired" };
    return { session };
  }
}

/**
 * The secrets of a ticket key file: one key per line as hex (`openssl rand
 * -hex 32`), `#` comments and blank lines ignored, the first key sealing.
 * Errors name the line, never the key.
 */
export function parseTicketKeyFile(text: string, source = "ticket key file"): Uint8Array[] {
  const secrets: Uint8Array[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const secret = fromHex(line);
    if (secret === undefined) {
      throw new TypeError(`Cannot parse ${source} line ${i + 1}: not an even number of hex digits`);
    }
    if (secret.length < MIN_TICKET_SECRET || secret.length > MAX_TICKET_SECRET) {
      throw new TypeError(
        `Cannot parse ${source} line ${i + 1}: a key of ${secret.length} bytes, ` +
          `${MIN_TICKET_SECRET} to ${MAX_TICKET_SECRET} needed (openssl rand -hex 32)`,
      );
    }
    secrets.push(secret);
    if (secrets.length > MAX_TICKET_KEYS) {
      throw new TypeError(`Cannot parse ${source}: more than ${MAX_TICKET_KEYS} keys`);
    }
  }
  if (secrets.length === 0) throw new TypeError(`Cannot parse ${source}: no keys`);
  return secrets;
}
