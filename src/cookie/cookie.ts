/**
 * Stateless cookies for the HelloVerifyRequest exchange (RFC 6347 §4.2.1).
 *
 * A cookie binds the peer's address and port and the ClientHello parameters
 * to a time and a server secret, so that verifying it needs no per-peer state:
 *
 *     cookie = generation(1) || issued_at_seconds(4) || HMAC-SHA256(secret, input)[0..16]
 *     input  = generation || issued_at || for each of peer, client_version || random
 *              || session_id, cipher_suites, compression_methods: length(2) || bytes
 *
 * Every variable-length part carries its length, so no two different inputs
 * concatenate to the same bytes: a cookie minted for `10.0.0.1:555` cannot be
 * read as one for `10.0.0.1:55` with a byte moved into the next field.
 *
 * The secret rotates; the current and the previous one are accepted, so a
 * cookie minted just before a rotation still verifies. A cookie older than
 * `lifetimeMs` is refused even when its MAC checks out.
 *
 * @module
 */

import { Reader, readU32 } from "../codec/reader.ts";
import { writeU32 } from "../codec/writer.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import type { CryptoProvider, Mac, RandomSource } from "../crypto/provider.ts";

/** When a cookie of the right length says it was minted, ms (whole seconds; meaningful once it verified). */
export function cookieIssuedAt(cookie: Uint8Array): number {
  if (cookie.length !== COOKIE_LENGTH) return 0;
  return readU32(cookie, 1) * 1000;
}

/** Bytes of a minted cookie. */
export const COOKIE_LENGTH = 21;
const MAC_LENGTH = 16;

/**
 * Why a cookie did not verify, or `"ok"`; `"replayed"` is the endpoint's: a
 * valid cookie this address already used, replayed to replace its association.
 */
export type CookieVerdict = "ok" | "missing" | "malformed" | "expired" | "invalid" | "replayed";

/** Options of a {@link CookieAuthority}. */
export interface CookieOptions {
  /** Primitives (HMAC-SHA256). */
  readonly provider: CryptoProvider;
  /** Source of the secrets. */
  readonly random: RandomSource;
  /** How often the secret rotates, in ms (default 60 s). */
  readonly rotationMs?: number;
  /** How long a cookie stays valid, in ms (default 2 × rotation; never more than that). */
  readonly lifetimeMs?: number;
}

interface Secret {
  readonly generation: number;
  readonly mac: Mac;
  /** The MAC of DTLS 1.3 retry cookies: a key of its own, derived from the secret. */
  readonly retryMac: Mac;
}

/** What the retry cookies' key is derived with, so that neither kind of cookie passes as the other. */
const RETRY_KEY_LABEL = new TextEncoder().encode("dtls13 retry cookie");

/**
 * Mints and verifies cookies. Holds two secrets and nothing per peer.
 */
export class CookieAuthority {
  readonly #provider: CryptoProvider;
  readonly #random: RandomSource;
  readonly #rotationMs: number;
  readonly #lifetimeMs: number;
  #current: Secret | undefined;
  #previous: Secret | undefined;
  #rotatedAt = 0;
  /**
   * The MAC input, written into one reused buffer: one HMAC call over one
   * array, instead of nine parts and four length arrays per cookie.
   */
  #input = new Uint8Array(512);

  constructor(options: CookieOptions) {
    this.#provider = options.provider;
    this.#random = options.random;
    this.#rotationMs = options.rotationMs ?? 60_000;
    this.#lifetimeMs = Math.min(options.lifetimeMs ?? 2 * this.#rotationMs, 2 * this.#rotationMs);
  }

  /** How long a cookie stays valid after it is minted, ms. */
  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }

  #secretsAt(now: number): Secret {
    if (this.#current === undefined || now - this.#rotatedAt >= this.#rotationMs) {
      this.#previous = this.#current;
      const generation = ((this.#current?.generation ?? -1) + 1) & 0xff;
      const key = this.#random(32);
      const mac = this.#provider.hmac("sha256", key);
      const retryMac = this.#provider.hmac("sha256", mac.compute(RETRY_KEY_LABEL));
      key.fill(0);
      this.#current = { generation, mac, retryMac };
      this.#rotatedAt = now;
    }
    return this.#current;
  }

  /** Retires the current secret now (e.g. on operator request): cookies made with the retired one still verify until the next rotation. */
  rotate(now: number): void {
    this.#rotatedAt = -Infinity;
    this.#secretsAt(now);
  }

  #compute(
    secret: Secret,
    issuedAt: number,
    peer: Uint8Array,
    params: ClientHelloParams,
  ): Uint8Array {
    const parts = [peer, params.head, params.suites, params.compression];
    let size = 5;
    for (const part of parts) size += 2 + part.length;
    if (size > this.#input.length) this.#input = new Uint8Array(size);
    const input = this.#input;
    input[0] = secret.generation;
    writeU32(input, 1, issuedAt);
    let at = 5;
    for (const part of parts) {
      // Every part is shorter than a 2^16-byte handshake body.
      input[at] = part.length >>> 8;
      input[at + 1] = part.length;
      input.set(part, at + 2);
      at += 2 + part.length;
    }
    const tag = secret.mac.compute(input.subarray(0, size));
    const cookie = new Uint8Array(COOKIE_LENGTH);
    cookie.set(input.subarray(0, 5));
    cookie.set(tag.subarray(0, MAC_LENGTH), 5);
    return cookie;
  }

  /** A fresh cookie for this peer and ClientHello. */
  mint(peer: Uint8Array, params: ClientHelloParams, now: number): Uint8Array {
    return this.#compute(this.#secretsAt(now), Math.floor(now / 1000) >>> 0, peer, params);
  }

  /** Checks a cookie in constant time with respect to its MAC. */
  verify(
    peer: Uint8Array,
    params: ClientHelloParams,
    cookie: Uint8Array,
    now: number,
  ): CookieVerdict {
    if (cookie.length === 0) return "missing";
    if (cookie.length !== COOKIE_LENGTH) return "malformed";
    const secret = this.#secretOf(cookie, now);
    if (secret === undefined) return "expired";
    const issuedAt = cookieIssuedAt(cookie) / 1000;
    const expected = this.#compute(secret, issuedAt, peer, params);
    if (!constantTimeEqual(expected, cookie)) return "invalid";
    const ageMs = now - issuedAt * 1000;
    // A cookie from the future (beyond clock granularity) or past its lifetime is refused.
    if (ageMs < -1000 || ageMs > this.#lifetimeMs) return "expired";
    return "ok";
  }

  /**
   * A cookie for a DTLS 1.3 HelloRetryRequest (RFC 9147 §5.1): the server's
   * state of the first ClientHello, which it then forgets, bound to the
   * peer's address and a time under the same secrets:
   *
   *     generation(1) || issued_at(4) || state || HMAC(retry key, peer || all before)[0..16]
   *
   * The retry key is derived from the secret, so that neither kind of
   * cookie passes as the other.
   */
  mintRetry(peer: Uint8Array, state: Uint8Array, now: number): Uint8Array {
    const secret = this.#secretsAt(now);
    const head = new Uint8Array(5 + state.length);
    head[0] = secret.generation;
    writeU32(head, 1, Math.floor(now / 1000) >>> 0);
    head.set(state, 5);
    const out = new Uint8Array(head.length + MAC_LENGTH);
    out.set(head);
    out.set(this.#retryTag(secret, peer, head), head.length);
    return out;
  }

  /**
   * The state a retry cookie carries, once its MAC, its secret's generation
   * and its age check out (the MAC compared in constant time); else why not.
   */
  verifyRetry(
    peer: Uint8Array,
    cookie: Uint8Array,
    now: number,
  ): { readonly verdict: "ok"; readonly state: Uint8Array; readonly issuedAt: number } | {
    readonly verdict: Exclude<CookieVerdict, "ok">;
  } {
    if (cookie.length === 0) return { verdict: "missing" };
    if (cookie.length < 5 + MAC_LENGTH) return { verdict: "malformed" };
    const secret = this.#secretOf(cookie, now);
    if (secret === undefined) return { verdict: "expired" };
    const head = cookie.subarray(0, cookie.length - MAC_LENGTH);
    const tag = this.#retryTag(secret, peer, head);
    if (!constantTimeEqual(tag, cookie.subarray(head.length))) return { verdict: "invalid" };
    const issuedAt = readU32(cookie, 1) * 1000;
    const ageMs = now - issuedAt;
    if (ageMs < -1000 || ageMs > this.#lifetimeMs) return { verdict: "expired" };
    return { verdict: "ok", state: head.subarray(5), issuedAt };
  }

  /** The secret of the generation a cookie names (its first byte), if it is still held at `now`. */
  #secretOf(cookie: Uint8Array, now: number): Secret | undefined {
    const current = this.#secretsAt(now);
    const generation = cookie[0]!;
    if (generation === current.generation) return current;
    return generation === this.#previous?.generation ? this.#previous : undefined;
  }

  #retryTag(secret: Secret, peer: Uint8Array, head: Uint8Array): Uint8Array {
    const prefix = new Uint8Array([peer.length >>> 8, peer.length & 0xff]);
    return secret.retryMac.compute(prefix, peer, head).subarray(0, MAC_LENGTH);
  }
}

/**
 * The ClientHello fields a cookie covers (RFC 6347 §4.2.1: version, random,
 * session_id, cipher_suites, compression_method), as subarrays of its body.
 * Extensions are left out: some clients legitimately vary them between the two
 * ClientHellos.
 */
export interface ClientHelloParams {
  /** client_version, as a number (0xfefd is DTLS 1.2). */
  readonly clientVersion: number;
  /** client_version || random || session_id (with its length byte). */
  readonly head: Uint8Array;
  /** cipher_suites (with its length prefix). */
  readonly suites: Uint8Array;
  /** compression_methods (with its length prefix). */
  readonly compression: Uint8Array;
  /** The cookie the client sent (possibly empty). */
  readonly cookie: Uint8Array;
}

/** Slices a ClientHello body into the fields a cookie covers; throws DecodeError on a short body. */
export function clientHelloParams(body: Uint8Array): ClientHelloParams {
  const r = new Reader(body);
  const clientVersion = r.u16("ClientHello.client_version");
  r.bytes(32, "ClientHello.random");
  r.opaque8("ClientHello.session_id");
  const headEnd = r.position;
  const cookie = r.opaque8("ClientHello.cookie");
  const suitesStart = r.position;
  r.opaque16("ClientHello.cipher_suites");
  const compressionStart = r.position;
  r.opaque8("ClientHello.compression_methods");
  return {
    clientVersion,
    head: body.subarray(0, headEnd),
    suites: body.subarray(suitesStart, compressionStart),
    compression: body.subarray(compressionStart, r.position),
    cookie,
  };
}
