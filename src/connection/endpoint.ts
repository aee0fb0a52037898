/**
 * The server endpoint, sans-I/O: routes each datagram by peer address and
 * answers new peers statelessly until their cookie checks out
 * (RFC 6347 §4.2.1). It owns the connection table and nothing else: no
 * socket, no clock, no logging.
 *
 *     const out = endpoint.handleDatagram(bytes, "127.0.0.1:5555", now);
 *     // out.kind: "dropped" | "hello_verify_request" | "connection"
 *
 * @module
 */

import { byteString } from "../codec/byte_string.ts";
import {
  clientHelloParams,
  CookieAuthority,
  cookieIssuedAt,
  type CookieVerdict,
} from "../cookie/cookie.ts";
import {
  AlertDescription,
  AlertLevel,
  alertName,
  encodeAlert,
  encodeHelloVerifyRequest,
  HandshakeType,
} from "../handshake/messages.ts";
import {
  encodeHandshakeMessage,
  type HandshakeFragment,
  parseHandshakeFragments,
} from "../handshake/fragments.ts";
import {
  type ClientAuthPolicy,
  type ServerCertificate,
  ServerHandshake,
  type ServerHandshakeOptions,
} from "../handshake/server.ts";
import {
  CertificateType,
  decodeCertificateTypes,
  ExtensionType,
  findExtension,
  SignatureSchemeCode,
} from "../handshake/extensions.ts";
import { schemes13 } from "../crypto/signatures.ts";
import { ClientHandshake, type ClientHandshakeOptions } from "../handshake/client.ts";
import {
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  encodeRecord,
  MAX_PLAINTEXT_LENGTH,
  parseRecords,
  type RecordView,
} from "../record/header.ts";
import { Connection, type ConnectionConfig } from "./connection.ts";
import { Connection13 } from "./connection13.ts";
import {
  chooseRetry,
  type ClientHello13,
  decodeRetryState,
  DEFAULT_HELLO13_POLICY,
  encodeRetryState,
  type Hello13Policy,
  helloRetryRequestBody,
  offersDtls13,
  readClientHello13,
  type RetryState,
} from "../handshake/client_hello13.ts";
import { DTLS_1_3, transcriptMessage } from "../handshake/messages13.ts";
import { type Resumption13, ServerDriver13, ServerHandshake13 } from "../handshake/server13.ts";
import { clientAuthenticationHolds, pskSessionRefusal } from "../session/resumption.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { type Client13Options, ClientDriver13 } from "../handshake/client13.ts";
import { ProtocolError } from "../handshake/errors.ts";
import type { Association } from "./association.ts";
import { MAX_CID_LENGTH } from "../handshake/extensions.ts";
import { DEFAULT_RETRANSMIT } from "../handshake/flight.ts";
import { MemoryBudget } from "../memory/budget.ts";
import { DeadlineHeap, type Scheduled } from "./deadlines.ts";
import { checkOptions, definedOnly, type OptionKind } from "./options.ts";
import { sourceAddress, SourceRateLimiter } from "./admission.ts";
import type { CryptoProvider, RandomSource } from "../crypto/provider.ts";

/** Defaults for {@link ConnectionConfig} apart from provider and random. */
export const CONNECTION_DEFAULTS = Object.freeze(
  {
    mtu: 1200,
    retransmit: DEFAULT_RETRANSMIT,
    handshakeTimeoutMs: 30_000,
    maxHandshakeMessage: 16_384,
    maxReassemblyPerHandshake: 65_536,
  } as const,
);

/** A connection config from a provider, a random source and optional overrides. */
export function connectionConfig(
  provider: CryptoProvider,
  random: RandomSource,
  overrides: { readonly [K in keyof ConnectionConfig]?: ConnectionConfig[K] | undefined } = {},
): ConnectionConfig {
  checkOptions("a connection config", overrides, CONNECTION_OPTIONS);
  return { ...CONNECTION_DEFAULTS, ...definedOnly(overrides), provider, random };
}

/** What {@link checkOptions} checks of each field of a {@link ConnectionConfig}. */
const CONNECTION_OPTIONS = {
  provider: "other",
  random: "other",
  mtu: "limit",
  retransmit: "other",
  handshakeTimeoutMs: "limit",
  maxHandshakeMessage: "limit",
  maxReassemblyPerHandshake: "limit",
  keyUpdateAfterRecords: "limit",
} as const satisfies Record<keyof ConnectionConfig, OptionKind>;

/** What {@link checkOptions} checks of each of the {@link ServerEndpointOptions}. */
const ENDPOINT_OPTIONS = {
  connection: "other",
  psk: "other",
  cookieRotationMs: "limit",
  maxConnections: "limit",
  idleTimeoutMs: "limit",
  maxHalfOpen: "limit",
  handshakeRate: "limit",
  handshakeBurst: "limit",
  maxRateSources: "limit",
  maxReassemblyTotal: "limit",
  maxReassemblyPerSource: "limit",
  cidLength: "limit",
  versions: "other",
  hello13: "other",
} as const satisfies Record<keyof ServerEndpointOptions, OptionKind>;

/** Defaults of {@link ServerEndpointOptions}: the table, its timeouts and admission limits. */
export const ENDPOINT_DEFAULTS = Object.freeze(
  {
    maxConnections: 10_000,
    idleTimeoutMs: 600_000,
    cookieRotationMs: 60_000,
    maxHalfOpen: 1_000,
    handshakeRate: 50,
    handshakeBurst: 100,
    maxRateSources: 4_096,
    maxReassemblyTotal: 8 * 1024 * 1024,
    maxReassemblyPerSource: 256 * 1024,
    cidLength: 6,
  } as const,
);

export { MAX_CID_LENGTH };

/**
 * The highest record sequence number of a ClientHello we answer with a
 * handshake: our epoch-0 records continue from it, and must never run out
 * (RFC 6347 §4.1) however long the connection lives and however often the
 * peer makes us resend our final flight. Honest clients start near 0.
 */
export const MAX_CLIENT_HELLO_SEQ = 2 ** 48 - 2 ** 32;

/**
 * The highest message_seq of a ClientHello we answer with a handshake: ours
 * continue from it and are uint16 (RFC 6347 §4.2.2). A client's is 0, or 1
 * after a HelloVerifyRequest, a little more after a few.
 */
export const MAX_CLIENT_HELLO_MESSAGE_SEQ = 255;

/** Settings of a {@link ServerEndpoint}. */
export interface ServerEndpointOptions {
  /** Per-connection settings. */
  readonly connection: ConnectionConfig;
  /** PSK policy and suites. */
  readonly psk: ServerHandshakeOptions;
  /** Cookie secret rotation, ms. */
  readonly cookieRotationMs?: number | undefined;
  /** Most connections (established and half-open) held at once. */
  readonly maxConnections?: number | undefined;
  /** An established connection silent for this long is closed, ms. */
  readonly idleTimeoutMs?: number | undefined;
  /** Most handshakes in progress (past the cookie, not yet complete) at once. */
  readonly maxHalfOpen?: number | undefined;
  /** Handshakes per second one source address may start once its cookie verified; 0: no limit. */
  readonly handshakeRate?: number | undefined;
  /** Handshakes one quiet source address may start at once. */
  readonly handshakeBurst?: number | undefined;
  /** Source addresses the rate limit tracks at once (bounds its memory). */
  readonly maxRateSources?: number | undefined;
  /** Handshake buffers (reassembly, early records) of all connections together, bytes. */
  readonly maxReassemblyTotal?: number | undefined;
  /** Handshake buffers of the connections of one source address (IPv6: one /64) together, bytes. */
  readonly maxReassemblyPerSource?: number | undefined;
  /**
   * Bytes of the Connection ID (RFC 9146) we give a client that offers the
   * extension, 0 to 32; 0: none. Its records are routed by it, whatever
   * address they come from.
   */
  readonly cidLength?: number | undefined;
  /**
   * The DTLS versions spoken (default both): a client that offers 1.3 gets
   * it when "1.3" is here; with "1.2" here too, a 1.2 ServerHello carries
   * the downgrade sentinel.
   */
  readonly versions?: readonly DtlsVersion[] | undefined;
  /** The suites and groups of DTLS 1.3 (default: all of them). */
  readonly hello13?: Hello13Policy | undefined;
}

/** A DTLS version, as the `versions` option names it. */
export type DtlsVersion = "1.2" | "1.3";

/** The options with every default filled in. */
type ResolvedEndpointOptions =
  & Omit<ServerEndpointOptions, keyof typeof ENDPOINT_DEFAULTS>
  & { readonly [K in keyof typeof ENDPOINT_DEFAULTS]: number };

/** Why a handshake that passed the cookie check was not admitted. */
export type AdmissionRefusal = "capacity" | "half_open" | "rate";

/**
 * One peer's place in the endpoint's table: its connection, and how its
 * owner reaches it. Gone from the table once the connection is removed.
 */
export interface PeerEntry<Route = unknown> {
  /**
   * The peer's address and port (`1.2.3.4:5`, `[::1]:5`): its key in the
   * table, until an authenticated record of a peer with a Connection ID
   * moves it (RFC 9146 §6).
   */
  readonly peer: string;
  readonly connection: Association;
  /** The owner's, set once the connection is made (the shell: the socket address); never read here. */
  route: Route | undefined;
}

/** What became of one datagram. */
export type EndpointOutcome<Route = unknown> =
  | { readonly kind: "dropped"; readonly reason: EndpointDropReason }
  | {
    readonly kind: "hello_verify_request";
    /** The datagram to send back (no state was kept). */
    readonly datagram: Uint8Array;
    /** Why the ClientHello's cookie was not accepted. */
    readonly cookie: Exclude<CookieVerdict, "ok">;
  }
  | {
    readonly kind: "hello_retry_request";
    /** The DTLS 1.3 HelloRetryRequest to send back, with its cookie (no state was kept). */
    readonly datagram: Uint8Array;
    /** Why the ClientHello's cookie was not accepted ("missing" for a first ClientHello). */
    readonly cookie: Exclude<CookieVerdict, "ok">;
  }
  | {
    readonly kind: "alert";
    /** A fatal alert to send back (no state was kept). */
    readonly datagram: Uint8Array;
    /** Its description, for the log. */
    readonly description: string;
    /** Why, when a DTLS 1.3 ClientHello was refused for a reason the alert does not say. */
    readonly reason?: string;
  }
  | {
    readonly kind: "connection";
    /** The peer's entry in the table. */
    readonly entry: PeerEntry<Route>;
    readonly connection: Association;
    /** True when this datagram created it (the cookie was just verified). */
    readonly created: boolean;
    /** A previous connection with this peer that the new handshake replaced (RFC 6347 §4.2.8). */
    readonly replaced: Association | undefined;
    /**
     * The address the peer had before this datagram moved it (a record
     * with its Connection ID, authenticated and the newest yet, came from
     * `entry.peer` now); absent when it did not move.
     */
    readonly movedFrom?: string;
  };

/** Why a datagram from a peer without a connection was dropped. */
export type EndpointDropReason =
  | "malformed"
  | "not_client_hello"
  | "fragmented_client_hello"
  /** A ClientHello with a new random while this address's association is still making progress. */
  | "handshake_in_progress"
  /** A ClientHello whose record sequence number or message_seq leaves us too few of our own. */
  | "sequence_limit"
  /** Our own failure while handling it (a bug): nothing was kept. */
  | "internal_error"
  /** A record with a Connection ID that no connection has. */
  | "unknown_connection_id"
  | AdmissionRefusal;

/** A connection in the table; also its entry in the deadline heap (`deadline`, `heapIndex`). */
interface Entry<Route> extends Scheduled, PeerEntry<Route> {
  /** Where the peer is now (see {@link PeerEntry.peer}). */
  peer: string;
  /** Its Connection ID, one character a byte, when it has one. */
  cidKey?: string;
  /** The spare Connection IDs a DTLS 1.3 connection gave out (NewConnectionId), likewise. */
  spareCidKeys?: string[];
  /**
   * The client_random of its handshake, one character per byte: a short
   * string costs an idle connection a tenth of a typed array's heap.
   */
  readonly clientRandom: string;
}

/**
 * Cookies that made connections, remembered at most (for as long as a
 * cookie verifies): past this, the oldest are forgotten first.
 */
const MAX_USED_COOKIES = 65_536;

/**
 * How long an association must have made no progress (no handshake message
 * taken, no record authenticated) before a ClientHello with a new random may
 * start over at its address. A restarted client waits a retransmission or
 * two; a spoofed ClientHello cannot throw a live handshake's client a
 * HelloVerifyRequest it does not expect (the client of a just completed
 * handshake may still be waiting for our Finished), and epoch-0 noise cannot
 * keep a dead one alive.
 */
const RESTART_QUIET_MS = 2_000;

/**
 * The oldest cookie that may replace an association, ms: a restarted client
 * echoes its cookie within a round trip or a few retransmissions, while a
 * replay brings an old one. A replay of a cookie that already made a
 * connection is refused by the table of used cookies, whether or not that
 * connection is still there.
 */
const REPLACING_COOKIE_MAX_AGE_MS = 10_000;

const encoder = new TextEncoder();

/**
 * Owns the cookie secret and the table of peers, keyed by "address:port";
 * `Route` is what its owner keeps per peer to reach it.
 */
export class ServerEndpoint<Route = unknown> {
  readonly #options: ResolvedEndpointOptions;
  readonly #config: ConnectionConfig;
  /** The handshake policy, with the Connection IDs this endpoint gives out. */
  readonly #handshake: ServerHandshakeOptions;
  readonly #cookies: CookieAuthority;
  readonly #speaks12: boolean;
  readonly #speaks13: boolean;
  readonly #hello13: Hello13Policy;
  /** The 1.2 policy for a client that offered 1.3 and is served 1.2: no downgrade sentinel. */
  readonly #handshakeWithoutSentinel: ServerHandshakeOptions;
  readonly #table = new Map<string, Entry<Route>>();
  /** The connections with a Connection ID, by it (one character a byte). */
  readonly #cids = new Map<string, Entry<Route>>();
  /** Peers with a Connection ID that moved to an address another peer holds: in no table slot. */
  readonly #detached = new Set<Entry<Route>>();
  /** Connections past the cookie whose handshake has not completed or failed yet. */
  readonly #halfOpen = new Set<Association>();
  readonly #maxHalfOpen: number;
  readonly #rate: SourceRateLimiter;
  readonly #memory: MemoryBudget;
  /** Every connection's next deadline (retransmission, handshake deadline, idle timeout). */
  readonly #deadlines = new DeadlineHeap<Entry<Route>>();
  /**
   * `address:port cookie` of each cookie that made a connection, and when,
   * oldest first: only as long as a cookie could still replace an
   * association (see #cookieUsed).
   */
  readonly #usedCookies = new Map<string, number>();
  /** Handshakes refused by admission control, by reason, since creation. */
  readonly refused: Record<AdmissionRefusal, number> = { capacity: 0, half_open: 0, rate: 0 };

  constructor(options: ServerEndpointOptions) {
    checkOptions("ServerEndpoint", options, ENDPOINT_OPTIONS);
    const o = { ...ENDPOINT_DEFAULTS, ...definedOnly(options) };
    if (!(Number.isInteger(o.cidLength) && o.cidLength >= 0 && o.cidLength <= MAX_CID_LENGTH)) {
      throw new RangeError(`Cannot give Connection IDs of ${o.cidLength} bytes: 0 to 32`);
    }
    this.#options = o;
    this.#maxHalfOpen = o.maxHalfOpen;
    this.#rate = new SourceRateLimiter({
      ratePerSecond: o.handshakeRate,
      burst: o.handshakeBurst,
      maxSources: o.maxRateSources,
    });
    this.#memory = new MemoryBudget({
      total: o.maxReassemblyTotal,
      perSource: o.maxReassemblyPerSource,
    });
    this.#config = o.connection;
    const versions = o.versions ?? ["1.2", "1.3"];
    if (versions.length === 0 || versions.some((v) => v !== "1.2" && v !== "1.3")) {
      throw new RangeError(`Cannot speak DTLS versions ${versions.join(",")}: 1.2, 1.3 or both`);
    }
    this.#speaks12 = versions.includes("1.2");
    this.#speaks13 = versions.includes("1.3");
    this.#hello13 = o.hello13 ?? DEFAULT_HELLO13_POLICY;
    const psk = this.#speaks13 ? { ...o.psk, downgradeSentinel: true } : o.psk;
    this.#handshake = o.cidLength === 0
      ? psk
      : { ...psk, newConnectionId: () => this.#newConnectionId() };
    this.#handshakeWithoutSentinel = { ...this.#handshake, downgradeSentinel: false };
    this.#cookies = new CookieAuthority({
      provider: o.connection.provider,
      random: o.connection.random,
      rotationMs: o.cookieRotationMs,
    });
  }

  /** Connections currently held. */
  get size(): number {
    return this.#table.size + this.#detached.size;
  }

  /** Handshakes in progress: past the cookie check, neither complete nor failed. */
  get halfOpen(): number {
    return this.#halfOpen.size;
  }

  /** Source addresses the handshake rate limit currently tracks. */
  get rateSources(): number {
    return this.#rate.size;
  }

  /** Deadlines held in the timer heap: at most one per connection. */
  get deadlineCount(): number {
    return this.#deadlines.size;
  }

  /** Bytes of handshake buffers (reassembly, early records) held for all connections. */
  get reassemblyBytes(): number {
    return this.#memory.used;
  }

  /** Bytes of handshake buffers held for the connections of `peer`'s source. */
  reassemblyBytesOf(peer: string): number {
    return this.#memory.usedBy(sourceAddress(peer));
  }

  /** Failures of our own (bugs) met while handling datagrams and timers, since creation. */
  internalErrors = 0;

  /** The connection with this peer, if any. */
  get(peer: string): Association | undefined {
    return this.#table.get(peer)?.connection;
  }

  /** Every peer's entry. */
  *entries(): IterableIterator<PeerEntry<Route>> {
    yield* this.#table.values();
    yield* this.#detached;
  }

  /** Forgets a peer's connection (after it closed and its output was drained). */
  remove(peer: string, connection?: Association): void {
    const entry = this.#table.get(peer);
    if (entry !== undefined && (connection === undefined || entry.connection === connection)) {
      this.#forget(entry);
    }
  }

  /** Forgets a peer's entry wherever it is now (a peer with a Connection ID may have moved). */
  forget(entry: PeerEntry<Route>): void {
    const own = entry as Entry<Route>;
    if (this.#table.get(own.peer) === own || this.#cids.get(own.cidKey ?? "") === own) {
      this.#forget(own);
    }
  }

  /** Connections with a Connection ID held now. */
  get connectionIdCount(): number {
    return this.#cids.size;
  }

  /** Takes an entry out of the table, the CID map, the half-open set and the deadline heap. */
  #forget(entry: Entry<Route>): void {
    if (this.#table.get(entry.peer) === entry) this.#table.delete(entry.peer);
    if (entry.cidKey !== undefined && this.#cids.get(entry.cidKey) === entry) {
      this.#cids.delete(entry.cidKey);
    }
    for (const key of entry.spareCidKeys ?? []) {
      if (this.#cids.get(key) === entry) this.#cids.delete(key);
    }
    this.#detached.delete(entry);
    this.#halfOpen.delete(entry.connection);
    this.#deadlines.delete(entry);
  }

  /**
   * Hands a connection the answer of its PSK lookup (see the `psk_lookup`
   * event); the owner drains the entry after. A connection gone meanwhile
   * ignores it.
   */
  deliverPskLookup(
    entry: PeerEntry<Route>,
    result: Uint8Array | undefined | Error,
    now: number,
  ): void {
    const own = entry as Entry<Route>;
    const connection = own.connection;
    this.#guard(connection, () => connection.deliverPskLookup(result, now));
    this.#settle(connection);
    if (!connection.isClosed) this.#schedule(own);
  }

  /** Retires the cookie secret now. */
  rotateCookieSecret(now: number): void {
    this.#cookies.rotate(now);
  }

  /** Routes one datagram from `peer`: by its Connection ID first, by address second. */
  handleDatagram(datagram: Uint8Array, peer: string, now: number): EndpointOutcome<Route> {
    if (this.#cids.size > 0) {
      const first = datagram[0]!;
      if (first === ContentType.Tls12Cid) return this.#routeByConnectionId(datagram, peer, now, 11);
      // A DTLS 1.3 unified header with its C bit: the CID follows the first byte.
      if ((first & 0xf0) === 0x30) return this.#routeByConnectionId(datagram, peer, now, 1);
    }
    const entry = this.#table.get(peer);
    if (entry !== undefined && !entry.connection.isClosed) {
      const hello = peekClientHello(datagram);
      // RFC 6347 §4.2.8: an epoch-0 ClientHello on an association (established
      // or still in its handshake) is a restarted client, unless it is a late
      // copy of this handshake's own. It goes the stateless way: a cookie
      // first, and only a fresh one replaces the association.
      if (hello === undefined || byteString(hello.random) === entry.clientRandom) {
        const connection = entry.connection;
        // #guard's work, without a closure per datagram.
        try {
          connection.handleDatagram(datagram, now);
        } catch (error) {
          this.internalErrors++;
          connection.failInternal(error);
        }
        this.#settle(connection);
        this.#schedule(entry);
        return {
          kind: "connection",
          entry,
          connection: entry.connection,
          created: false,
          replaced: undefined,
        };
      }
      // A clock set back (a negative interval) is not taken for progress:
      // that would lock a restarted client out until the clock caught up.
      const sinceProgress = now - entry.connection.lastProgress;
      if (sinceProgress >= 0 && sinceProgress < RESTART_QUIET_MS) {
        return { kind: "dropped", reason: "handshake_in_progress" };
      }
      const outcome = this.#accept(datagram, peer, now, entry.connection);
      if (outcome.kind === "hello_verify_request" && !entry.connection.isEstablished) {
        // A quiet handshake whose address starts over: its flight would
        // only meet the new exchange (whose client expects a ServerHello
        // next), so our timer stops resending it; the old peer, if it is
        // alive after all, can still ask for it by repeating its own.
        entry.connection.stopRetransmitting();
        this.#schedule(entry);
      }
      return outcome;
    }
    if (entry !== undefined) this.#forget(entry);
    try {
      return this.#accept(datagram, peer, now, undefined);
    } catch {
      // A bug on the stateless path: whatever it made is not in the table.
      this.internalErrors++;
      const made = this.#table.get(peer);
      if (made !== undefined) this.#forget(made);
      return { kind: "dropped", reason: "internal_error" };
    }
  }

  /**
   * A datagram that starts with a record carrying a Connection ID: to its
   * connection, wherever it came from. The peer moves to the datagram's
   * address only when one of its records authenticated and is the newest
   * it has sent (RFC 9146 §6): a replay or a forgery from elsewhere moves
   * nothing. It takes the new address in the table only if no other peer
   * holds it: it is reached by its CID anyway.
   */
  #routeByConnectionId(
    datagram: Uint8Array,
    peer: string,
    now: number,
    cidAt: number,
  ): EndpointOutcome<Route> {
    const length = this.#options.cidLength;
    if (datagram.length < cidAt + length + 2) return { kind: "dropped", reason: "malformed" };
    const entry = this.#cids.get(byteString(datagram.subarray(cidAt, cidAt + length)));
    if (entry === undefined || entry.connection.isClosed) {
      return { kind: "dropped", reason: "unknown_connection_id" };
    }
    const connection = entry.connection;
    const from = entry.peer;
    let newest = false;
    try {
      newest = connection.handleDatagram(datagram, now, from !== peer);
    } catch (error) {
      this.internalErrors++;
      connection.failInternal(error);
    }
    this.#settle(connection);
    this.#schedule(entry);
    if (!newest || from === peer) {
      return { kind: "connection", entry, connection, created: false, replaced: undefined };
    }
    if (this.#table.get(from) === entry) this.#table.delete(from);
    if (this.#table.has(peer)) {
      this.#detached.add(entry);
    } else {
      this.#table.set(peer, entry);
      this.#detached.delete(entry);
    }
    entry.peer = peer;
    return {
      kind: "connection",
      entry,
      connection,
      created: false,
      replaced: undefined,
      movedFrom: from,
    };
  }

  /** A Connection ID for a new connection: random, and no live connection's. */
  #newConnectionId(): Uint8Array | undefined {
    const length = this.#options.cidLength;
    if (length === 0) return undefined;
    // Random bytes collide rarely even at 2^16 connections with 4 bytes: a
    // few tries, then none (the handshake goes on without a CID).
    for (let attempt = 0; attempt < 4; attempt++) {
      const cid = this.#config.random(length);
      if (!this.#cids.has(byteString(cid))) return cid;
    }
    return undefined;
  }

  /**
   * Runs `step` on one connection; a throw that escaped it (connections
   * catch their own, so this is a bug) ends that connection, never the
   * caller's loop.
   */
  #guard(connection: Association, step: () => void): void {
    try {
      step();
    } catch (error) {
      this.internalErrors++;
      connection.failInternal(error);
    }
  }

  /**
   * Whether `cookie` already made a connection at `peer` recently enough
   * to pass as fresh. The record outlives the connection: an association
   * made again after the old one closed is as much a target of a replay.
   */
  #cookieUsed(peer: string, cookie: string, now: number): boolean {
    const at = this.#usedCookies.get(`${peer} ${cookie}`);
    return at !== undefined && now - at <= this.#cookies.lifetimeMs;
  }

  /** Remembers that `cookie` made a connection at `peer`; forgets what is too old to matter. */
  #rememberCookie(peer: string, cookie: string, now: number): void {
    for (const [key, at] of this.#usedCookies) {
      if (now - at <= this.#cookies.lifetimeMs && this.#usedCookies.size < MAX_USED_COOKIES) {
        break;
      }
      this.#usedCookies.delete(key);
    }
    this.#usedCookies.set(`${peer} ${cookie}`, now);
  }

  /** Stops counting a connection as half-open once its handshake is over either way. */
  #settle(connection: Association): void {
    if (connection.isEstablished || connection.isClosed) this.#halfOpen.delete(connection);
  }

  /** Admission control for a handshake whose cookie verified (nothing is kept on refusal). */
  #admit(peer: string, now: number, replacing: boolean): AdmissionRefusal | undefined {
    if (!replacing && this.size >= this.#options.maxConnections) return "capacity";
    if (this.#halfOpen.size >= this.#maxHalfOpen) return "half_open";
    // Last, so that a handshake refused for another reason spends no token.
    if (!this.#rate.tryTake(sourceAddress(peer), now)) return "rate";
    return undefined;
  }

  /** The stateless path: a HelloVerifyRequest, or a new connection once the cookie verifies. */
  #accept(
    datagram: Uint8Array,
    peer: string,
    now: number,
    previous: Association | undefined,
  ): EndpointOutcome<Route> {
    const { records } = parseRecords(datagram);
    const record = records[0];
    if (record === undefined) return { kind: "dropped", reason: "malformed" };
    // RFC 6347 §4.1: a ClientHello record says DTLS 1.0 or 1.2; anything else
    // (e.g. TLS on the DTLS port) is not ours to answer.
    if (record.version !== DTLS_1_0 && record.version !== DTLS_1_2) {
      return { kind: "dropped", reason: "malformed" };
    }
    if (record.type !== ContentType.Handshake || record.epoch !== 0) {
      return { kind: "dropped", reason: "not_client_hello" };
    }
    let fragment: HandshakeFragment | undefined;
    try {
      fragment = parseHandshakeFragments(record.fragment)[0];
    } catch {
      return { kind: "dropped", reason: "malformed" };
    }
    if (fragment === undefined || fragment.msgType !== HandshakeType.ClientHello) {
      return { kind: "dropped", reason: "not_client_hello" };
    }
    // Reassembling a fragmented ClientHello would need state before the cookie.
    if (fragment.fragmentOffset !== 0 || fragment.fragmentLength !== fragment.length) {
      return { kind: "dropped", reason: "fragmented_client_hello" };
    }
    let params;
    try {
      params = clientHelloParams(fragment.body);
    } catch {
      return { kind: "dropped", reason: "malformed" };
    }
    if (
      record.fragment.length > MAX_PLAINTEXT_LENGTH ||
      fragment.length > this.#config.maxHandshakeMessage
    ) {
      return { kind: "dropped", reason: "malformed" };
    }
    if (this.#speaks13) {
      let hello: ClientHello13 | undefined;
      try {
        hello = readClientHello13(fragment.body);
      } catch (error) {
        // One that offers 1.3 hears what is wrong with it, as RFC 8446 names
        // it; one echoing a HelloVerifyRequest's cookie is in 1.2's exchange.
        if (
          error instanceof ProtocolError && params.cookie.length === 0 &&
          offersDtls13(fragment.body)
        ) {
          return statelessAlert(record, error.alert, error.message);
        }
        hello = undefined;
      }
      const offers13 = hello !== undefined && hello.versions.includes(DTLS_1_3);
      // A client that offers 1.3 is served in it with a PSK, or with our
      // certificate when it takes one of its schemes; otherwise, if it
      // offers 1.2 too, in 1.2. One that echoes a retry cookie was already
      // answered in 1.3 and stays there, whatever changed since.
      if (
        offers13 &&
        (hello!.psks !== undefined || hello!.cookie !== undefined || !this.#speaks12 ||
          this.#certificateFits13(hello!))
      ) {
        return this.#accept13(datagram.length, record, fragment, hello!, peer, now, previous);
      }
    }
    if (!this.#speaks12) return statelessAlert(record, AlertDescription.ProtocolVersion);
    if (!isSupportedClientVersion(params.clientVersion)) {
      // We speak DTLS 1.2 only (RFC 6347 §4.1: versions count down, 1.0 is
      // 0xfeff): an older client gets protocol_version at once, with no
      // state kept and fewer bytes than it sent (RFC 5246 §E.1).
      return statelessAlert(record, AlertDescription.ProtocolVersion);
    }
    const peerBytes = encoder.encode(peer);
    let verdict = this.#cookies.verify(peerBytes, params, params.cookie, now);
    // RFC 6347 §4.2.8: a ClientHello may replace this address's association
    // only once the client has shown it is reachable. A cookie this address
    // already used shows nothing: it is a replay of an older handshake (a
    // cookie stays valid for minutes), so the client gets a fresh cookie
    // instead, which only the real one can echo.
    const cookie = byteString(params.cookie);
    if (
      verdict === "ok" &&
      (this.#cookieUsed(peer, cookie, now) ||
        (previous !== undefined &&
          now - cookieIssuedAt(params.cookie) > REPLACING_COOKIE_MAX_AGE_MS))
    ) {
      verdict = "replayed";
    }
    if (verdict !== "ok") {
      return {
        kind: "hello_verify_request",
        datagram: helloVerifyRequest(record, fragment, this.#cookies.mint(peerBytes, params, now)),
        cookie: verdict,
      };
    }
    if (record.seq > MAX_CLIENT_HELLO_SEQ || fragment.messageSeq > MAX_CLIENT_HELLO_MESSAGE_SEQ) {
      return { kind: "dropped", reason: "sequence_limit" };
    }
    const refusal = this.#admit(peer, now, previous !== undefined);
    if (refusal !== undefined) {
      this.refused[refusal]++;
      return { kind: "dropped", reason: refusal };
    }
    const memory = this.#memory.account(
      sourceAddress(peer),
      this.#config.maxReassemblyPerHandshake,
    );
    // The ClientHello is not kept: the transcript hashes it as it goes.
    const hello = { body: fragment.body.slice(), messageSeq: fragment.messageSeq };
    // RFC 8446 §4.1.3: a server that speaks 1.3 marks a 1.2 ServerHello so
    // that a client whose 1.3 offer was cut on the way sees it. A client
    // whose offer arrived and that we serve in 1.2 all the same (no PSK and
    // no certificate for it in 1.3, or client authentication on) was not
    // downgraded by anyone: marked, it would abort (illegal_parameter) and
    // could not connect at all.
    const policy = this.#speaks13 && !offersDtls13(fragment.body)
      ? this.#handshake
      : this.#handshakeWithoutSentinel;
    const connection = new Connection(this.#config, now, {
      driver: (host) => new ServerHandshake(host, policy, hello),
      memory,
      // Our epoch-0 records continue from the ClientHello's sequence number, as
      // the HelloVerifyRequest used it (RFC 6347 §4.2.1).
      helloSeq: record.seq,
    });
    // clientHelloParams read past the 32-byte random, so it is there.
    return this.#install(connection, fragment.body.subarray(2, 34), cookie, peer, now, previous);
  }

  /** A connection made from a ClientHello whose cookie verified: into the table, and started. */
  #install(
    connection: Association,
    random: Uint8Array,
    cookie: string,
    peer: string,
    now: number,
    previous: Association | undefined,
  ): EndpointOutcome<Route> {
    this.#rememberCookie(peer, cookie, now);
    previous?.abort(
      "replaced by a new handshake from the same address (RFC 6347 §4.2.8)",
      "replaced",
    );
    const replacedEntry = this.#table.get(peer);
    if (replacedEntry !== undefined) this.#forget(replacedEntry);
    const entry: Entry<Route> = {
      peer,
      connection,
      route: undefined,
      clientRandom: byteString(random),
      deadline: 0,
      heapIndex: -1,
    };
    this.#table.set(peer, entry);
    this.#halfOpen.add(connection);
    connection.start();
    // The ServerHello said whether the client takes a CID.
    const cid = connection.connectionId;
    if (cid !== undefined) {
      entry.cidKey = byteString(cid);
      this.#cids.set(entry.cidKey, entry);
    }
    this.#settle(connection);
    this.#schedule(entry);
    return { kind: "connection", entry, connection, created: true, replaced: previous };
  }

  /**
   * The stateless path of DTLS 1.3 (RFC 9147 §5.1): a ClientHello without
   * a valid cookie gets a HelloRetryRequest whose cookie holds what we chose
   * and its hash, and nothing is kept; one that echoes a valid cookie makes
   * a connection, after the same admission control as 1.2.
   */
  #accept13(
    datagramLength: number,
    record: RecordView,
    fragment: HandshakeFragment,
    hello: ClientHello13,
    peer: string,
    now: number,
    previous: Association | undefined,
  ): EndpointOutcome<Route> {
    const peerBytes = encoder.encode(peer);
    let verdict: Exclude<CookieVerdict, "ok"> = "missing";
    if (hello.cookie !== undefined) {
      const checked = this.#cookies.verifyRetry(peerBytes, hello.cookie, now);
      const cookie = byteString(hello.cookie);
      if (
        checked.verdict === "ok" &&
        (this.#cookieUsed(peer, cookie, now) ||
          (previous !== undefined && now - checked.issuedAt > REPLACING_COOKIE_MAX_AGE_MS))
      ) {
        verdict = "replayed";
      } else if (checked.verdict === "ok") {
        const state = decodeRetryState(checked.state);
        if (state === undefined) return { kind: "dropped", reason: "internal_error" };
        return this.#connect13(record, fragment, hello, state, cookie, peer, now, previous);
      } else {
        verdict = checked.verdict;
      }
    }
    let choice;
    try {
      const certificate = this.#certificate13();
      choice = chooseRetry(
        hello,
        this.#hello13,
        certificate === undefined ? undefined : schemes13(certificate.key),
      );
    } catch (error) {
      if (error instanceof ProtocolError) return statelessAlert(record, error.alert, error.message);
      throw error;
    }
    const framed = transcriptMessage(HandshakeType.ClientHello, fragment.body);
    const helloHash = this.#config.provider.hash(choice.suite.hash, framed);
    const cookie = this.#cookies.mintRetry(
      peerBytes,
      encodeRetryState({ ...choice, helloHash }),
      now,
    );
    const body = helloRetryRequestBody(hello.hello.sessionId, choice, cookie);
    // RFC 9147 §5.1: the HelloRetryRequest has the ClientHello's record number and message_seq.
    const datagram = encodeRecord(
      ContentType.Handshake,
      DTLS_1_2,
      0,
      record.seq,
      encodeHandshakeMessage(HandshakeType.ServerHello, fragment.messageSeq, body),
    );
    // Never more than three times what an unverified address sent us.
    if (datagram.length > 3 * datagramLength) return { kind: "dropped", reason: "malformed" };
    return { kind: "hello_retry_request", datagram, cookie: verdict };
  }

  /**
   * The certificate a DTLS 1.3 handshake may authenticate us with: none
   * while client authentication takes raw public keys alone (1.3 takes
   * X.509 client certificates only: those clients are served in 1.2).
   */
  #certificate13(): ServerCertificate | undefined {
    const auth = this.#clientAuth();
    if (auth !== undefined && auth.check === undefined) return undefined;
    return this.#handshake.certificate?.();
  }

  /** The client authentication policy now (it may be replaced by a reload). */
  #clientAuth(): ClientAuthPolicy | undefined {
    const auth = this.#handshake.clientAuth;
    return typeof auth === "function" ? auth() : auth;
  }

  /** Resumption by ticket for a DTLS 1.3 handshake at `now`, when tickets are on. */
  #resumption13(now: number): Resumption13 | undefined {
    const options = this.#handshake;
    const tickets = options.resumption?.tickets;
    if (tickets === undefined) return undefined;
    const asynchronous = options.pskLookupIsAsynchronous?.() ?? false;
    const provider = this.#config.provider;
    return {
      tickets,
      now,
      ticketsForPsk: !asynchronous,
      stillServed: (session) => {
        if (session.serverSpkiSha256.length > 0) {
          const certificate = this.#certificate13();
          if (
            certificate === undefined ||
            !constantTimeEqual(provider.hash("sha256", certificate.spki), session.serverSpkiSha256)
          ) {
            return false;
          }
          return clientAuthenticationHolds(session, this.#clientAuth(), now);
        }
        return pskSessionRefusal(session, options.lookupPsk, asynchronous, provider) ===
          undefined;
      },
    };
  }

  /**
   * Whether our certificate signs a scheme a 1.3 ClientHello takes, and the
   * client can authenticate in 1.3 if we ask it to: not one that offers
   * only a raw public key (client_certificate_type without X.509) to a
   * policy that takes raw keys, which 1.2 alone serves.
   */
  #certificateFits13(hello: ClientHello13): boolean {
    const certificate = this.#certificate13();
    if (
      certificate === undefined ||
      !schemes13(certificate.key).some((s) =>
        hello.signatureSchemes.includes(SignatureSchemeCode[s])
      )
    ) {
      return false;
    }
    const auth = this.#clientAuth();
    if (auth?.rawKeys === undefined || auth.rawKeys.length === 0) return true;
    const types = findExtension(hello.hello.extensions, ExtensionType.ClientCertificateType);
    if (types === undefined) return true;
    try {
      return decodeCertificateTypes(types.data).includes(CertificateType.X509);
    } catch {
      return false;
    }
  }

  /** A second ClientHello whose cookie verified: a DTLS 1.3 connection, once admitted. */
  #connect13(
    record: RecordView,
    fragment: HandshakeFragment,
    hello: ClientHello13,
    state: RetryState,
    cookie: string,
    peer: string,
    now: number,
    previous: Association | undefined,
  ): EndpointOutcome<Route> {
    if (record.seq > MAX_CLIENT_HELLO_SEQ || fragment.messageSeq > MAX_CLIENT_HELLO_MESSAGE_SEQ) {
      return { kind: "dropped", reason: "sequence_limit" };
    }
    const retryRequest = helloRetryRequestBody(hello.hello.sessionId, state, hello.cookie!);
    // A client that offers a CID (RFC 9147 §9) gets ours in the ServerHello;
    // one over 32 bytes is declined, as in 1.2.
    const theirs = hello.connectionId;
    const ours = theirs !== undefined && theirs.length <= MAX_CID_LENGTH
      ? this.#newConnectionId()
      : undefined;
    const connectionIds = ours === undefined ? undefined : { ours, theirs: theirs!.slice() };
    let handshake: ServerHandshake13;
    try {
      handshake = new ServerHandshake13(
        {
          provider: this.#config.provider,
          random: this.#config.random,
          maxIdentityLength: this.#handshake.maxIdentityLength,
          ...(ours === undefined ? {} : { connectionId: ours }),
          certificate: this.#certificate13(),
          resumption: this.#resumption13(now),
          keyLog: this.#handshake.keyLog,
          clientAuth: () => this.#clientAuth(),
        },
        state,
        hello,
        fragment.body.slice(),
        retryRequest,
      );
    } catch (error) {
      // The address is verified: the client hears why.
      if (error instanceof ProtocolError) return statelessAlert(record, error.alert, error.message);
      throw error;
    }
    const refusal = this.#admit(peer, now, previous !== undefined);
    if (refusal !== undefined) {
      this.refused[refusal]++;
      return { kind: "dropped", reason: refusal };
    }
    const memory = this.#memory.account(
      sourceAddress(peer),
      this.#config.maxReassemblyPerHandshake,
    );
    const driverOptions = {
      lookupPsk: this.#handshake.lookupPsk,
      dummyKeyLength: this.#handshake.dummyKeyLength?.() ?? 32,
    };
    // Spare CIDs the connection gives out (NewConnectionId) route to its entry too.
    let entry: Entry<Route> | undefined;
    const issueConnectionId = () => {
      const cid = entry === undefined || entry.connection.isClosed
        ? undefined
        : this.#newConnectionId();
      if (cid === undefined) return undefined;
      const key = byteString(cid);
      (entry!.spareCidKeys ??= []).push(key);
      this.#cids.set(key, entry!);
      return cid;
    };
    const connection = new Connection13(this.#config, now, {
      driver: (host) => new ServerDriver13(host, handshake, driverOptions),
      helloSeq: record.seq,
      helloMessageSeq: fragment.messageSeq,
      memory,
      ...(connectionIds === undefined ? {} : { connectionIds, issueConnectionId }),
    });
    const outcome = this.#install(connection, hello.hello.random, cookie, peer, now, previous);
    if (outcome.kind === "connection") entry = outcome.entry as Entry<Route>;
    return outcome;
  }

  /**
   * When {@link handleTimeouts} should next be called (the earliest
   * retransmission, handshake deadline, idle timeout or buffer release of
   * any connection), or undefined when nothing is pending.
   */
  pollTimeout(): number | undefined {
    return this.#deadlines.peek()?.deadline;
  }

  /**
   * Fires the timers and idle timeouts due by `now`; returns the connections
   * it touched, whose output the owner should drain. Only connections with
   * something due are visited.
   */
  handleTimeouts(now: number): PeerEntry<Route>[] {
    const touched: PeerEntry<Route>[] = [];
    for (let entry = this.#deadlines.peek(); entry !== undefined && entry.deadline <= now;) {
      this.#deadlines.delete(entry);
      if (this.#fire(entry.connection, now)) touched.push(entry);
      this.#schedule(entry);
      entry = this.#deadlines.peek();
    }
    return touched;
  }

  /** One connection's due timers; true when it may have output. */
  #fire(connection: Association, now: number): boolean {
    if (connection.isClosed) {
      this.#halfOpen.delete(connection);
      return false;
    }
    const quiet = now - connection.lastReceive;
    if (connection.isEstablished && quiet >= this.#options.idleTimeoutMs) {
      connection.close("idle timeout", "idle_timeout");
      return true;
    }
    if (quiet >= QUIET_MS) connection.releaseIdleMemory();
    const due = connection.pollTimeout();
    if (due === undefined || due > now) return false;
    this.#guard(connection, () => connection.handleTimeout(now));
    this.#settle(connection);
    return true;
  }

  /** The next time anything is due for `connection`, or undefined. */
  #deadlineOf(connection: Association): number | undefined {
    if (connection.isClosed) return undefined;
    let due = connection.pollTimeout() ?? Infinity;
    if (connection.isEstablished) {
      due = Math.min(due, connection.lastReceive + this.#options.idleTimeoutMs);
    }
    if (connection.holdsIdleMemory) due = Math.min(due, connection.lastReceive + QUIET_MS);
    return due === Infinity ? undefined : due;
  }

  /**
   * Sets the entry's place in the heap to its connection's next deadline.
   * One that moved earlier is moved now. One that moved a little later is
   * left where it was (every datagram moves the idle timeout later): the
   * entry fires early, finds nothing due and is set again. One that moved
   * much later (a handshake done: from its retransmission to its idle
   * timeout) is moved now, to spare the early wake-up.
   */
  #schedule(entry: Entry<Route>): void {
    const due = this.#deadlineOf(entry.connection);
    if (due === undefined) return this.#deadlines.delete(entry);
    if (entry.heapIndex >= 0 && entry.deadline <= due && due - entry.deadline < LAZY_LATER_MS) {
      return;
    }
    this.#deadlines.set(entry, due);
  }
}

/** How much later a deadline may move before its heap entry is moved too, ms (see #schedule). */
const LAZY_LATER_MS = 1_000;

/** A connection not heard from for this long gives back its receive buffer, ms. */
const QUIET_MS = 1_000;

/** The ClientHello at the start of a datagram, if that is what it carries. */
function peekClientHello(datagram: Uint8Array): { random: Uint8Array } | undefined {
  // Hot path: almost every datagram of an established peer is application
  // data. Look at the header bytes before parsing anything: content type 22
  // (handshake), epoch 0, and handshake type 1 (ClientHello) at offset 13.
  if (
    datagram.length < 25 || datagram[0] !== ContentType.Handshake || datagram[3] !== 0 ||
    datagram[4] !== 0 || datagram[13] !== HandshakeType.ClientHello
  ) {
    return undefined;
  }
  const record = parseRecords(datagram).records[0];
  if (record === undefined || record.epoch !== 0 || record.type !== ContentType.Handshake) {
    return undefined;
  }
  try {
    const f = parseHandshakeFragments(record.fragment)[0];
    if (f === undefined || f.msgType !== HandshakeType.ClientHello || f.fragmentOffset !== 0) {
      return undefined;
    }
    if (f.body.length < 34) return undefined;
    return { random: f.body.subarray(2, 34) };
  } catch {
    return undefined;
  }
}

/**
 * A fatal alert in answer to a ClientHello, with no state kept: in the
 * ClientHello's record number, fewer bytes than it had.
 */
function statelessAlert(
  record: RecordView,
  description: number,
  reason?: string,
): EndpointOutcome<never> {
  return {
    ...(reason === undefined ? {} : { reason }),
    kind: "alert",
    datagram: encodeRecord(
      ContentType.Alert,
      record.version === DTLS_1_0 ? DTLS_1_0 : DTLS_1_2,
      0,
      record.seq,
      encodeAlert(AlertLevel.Fatal, description),
    ),
    description: alertName(description),
  };
}

/**
 * The stateless answer (RFC 6347 §4.2.1): server_version DTLS 1.0 as the RFC
 * recommends, the record sequence number and message_seq of the ClientHello.
 */
function helloVerifyRequest(
  record: RecordView,
  fragment: HandshakeFragment,
  cookie: Uint8Array,
): Uint8Array {
  const body = encodeHelloVerifyRequest({ serverVersion: DTLS_1_0, cookie });
  const message = encodeHandshakeMessage(
    HandshakeType.HelloVerifyRequest,
    fragment.messageSeq,
    body,
  );
  return encodeRecord(ContentType.Handshake, DTLS_1_0, 0, record.seq, message);
}

/**
 * Whether we answer a ClientHello of this client_version: DTLS 1.2 (0xfefd)
 * or a later version's number (lower: 0xfefc is 1.3), which negotiates
 * down to 1.2; not 1.0 (0xfeff), nor anything that is not a DTLS version.
 */
function isSupportedClientVersion(version: number): boolean {
  return version >= 0xfe00 && version <= DTLS_1_2;
}

/** A client connection that sends its first ClientHello on creation. */
export function createClientConnection(
  config: ConnectionConfig,
  options: ClientHandshakeOptions,
  now: number,
): Connection {
  const connection = new Connection(config, now, {
    driver: (host) => new ClientHandshake(host, options),
  });
  connection.start();
  return connection;
}

/** A DTLS 1.3 client connection that sends its first ClientHello on creation. */
export function createClientConnection13(
  config: ConnectionConfig,
  options: Client13Options,
  now: number,
): Connection13 {
  const connection = new Connection13(config, now, {
    driver: (host) => new ClientDriver13(host, options),
  });
  connection.start();
  return connection;
}
