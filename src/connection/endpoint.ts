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

import { clientHelloParams, CookieAuthority, type CookieVerdict } from "../cookie/cookie.ts";
import { encodeHelloVerifyRequest, HandshakeType } from "../handshake/messages.ts";
import {
  encodeHandshakeMessage,
  type HandshakeFragment,
  parseHandshakeFragments,
} from "../handshake/fragments.ts";
import { type PskServerOptions, ServerHandshake } from "../handshake/server.ts";
import { ClientHandshake, type PskClientOptions } from "../handshake/client.ts";
import {
  ContentType,
  DTLS_1_0,
  encodeRecord,
  parseRecords,
  type RecordView,
} from "../record/header.ts";
import { Connection, type ConnectionConfig } from "./connection.ts";
import { DEFAULT_RETRANSMIT } from "../handshake/flight.ts";
import type { CryptoProvider, RandomSource } from "../crypto/provider.ts";

/** Defaults for {@link ConnectionConfig} apart from provider and random. */
export const CONNECTION_DEFAULTS = {
  mtu: 1200,
  retransmit: DEFAULT_RETRANSMIT,
  handshakeTimeoutMs: 30_000,
  maxHandshakeMessageBytes: 16_384,
  maxBufferedHandshakeBytes: 65_536,
} as const;

/** A connection config from a provider, a random source and optional overrides. */
export function connectionConfig(
  provider: CryptoProvider,
  random: RandomSource,
  overrides: Partial<Omit<ConnectionConfig, "provider" | "random">> = {},
): ConnectionConfig {
  return { ...CONNECTION_DEFAULTS, ...overrides, provider, random };
}

/** Settings of a {@link ServerEndpoint}. */
export interface ServerEndpointOptions {
  /** Per-connection settings. */
  readonly connection: ConnectionConfig;
  /** PSK policy and suites. */
  readonly psk: PskServerOptions;
  /** Cookie secret rotation, ms (default 60 s). */
  readonly cookieRotationMs?: number;
  /** Most connections (established and half-open) held at once. */
  readonly maxConnections: number;
  /** An established connection silent for this long is closed, ms. */
  readonly idleTimeoutMs: number;
}

/** What became of one datagram. */
export type EndpointOutcome =
  | { readonly kind: "dropped"; readonly reason: EndpointDropReason }
  | {
    readonly kind: "hello_verify_request";
    /** The datagram to send back (no state was kept). */
    readonly datagram: Uint8Array;
    /** Why the ClientHello's cookie was not accepted. */
    readonly cookie: Exclude<CookieVerdict, "ok">;
  }
  | {
    readonly kind: "connection";
    readonly connection: Connection;
    /** True when this datagram created it (the cookie was just verified). */
    readonly created: boolean;
    /** A previous connection with this peer that the new handshake replaced (RFC 6347 §4.2.8). */
    readonly replaced: Connection | undefined;
  };

/** Why a datagram from a peer without a connection was dropped. */
export type EndpointDropReason =
  | "malformed"
  | "not_client_hello"
  | "fragmented_client_hello"
  | "capacity";

interface Entry {
  readonly connection: Connection;
  readonly handshake: ServerHandshake;
}

const encoder = new TextEncoder();

/** Owns the cookie secret and the table of connections, keyed by "address:port". */
export class ServerEndpoint {
  readonly #options: ServerEndpointOptions;
  readonly #cookies: CookieAuthority;
  readonly #table = new Map<string, Entry>();

  constructor(options: ServerEndpointOptions) {
    this.#options = options;
    this.#cookies = new CookieAuthority({
      provider: options.connection.provider,
      random: options.connection.random,
      rotationMs: options.cookieRotationMs ?? 60_000,
    });
  }

  /** Connections currently held. */
  get size(): number {
    return this.#table.size;
  }

  /** The connection with this peer, if any. */
  get(peer: string): Connection | undefined {
    return this.#table.get(peer)?.connection;
  }

  /** Every peer and its connection. */
  *entries(): IterableIterator<[string, Connection]> {
    for (const [peer, entry] of this.#table) yield [peer, entry.connection];
  }

  /** Forgets a peer's connection (after it closed and its output was drained). */
  remove(peer: string, connection?: Connection): void {
    const entry = this.#table.get(peer);
    if (entry !== undefined && (connection === undefined || entry.connection === connection)) {
      this.#table.delete(peer);
    }
  }

  /** Retires the cookie secret now. */
  rotateCookieSecret(now: number): void {
    this.#cookies.rotate(now);
  }

  /** Routes one datagram from `peer`. */
  handleDatagram(datagram: Uint8Array, peer: string, now: number): EndpointOutcome {
    const entry = this.#table.get(peer);
    if (entry !== undefined && !entry.connection.isClosed) {
      const hello = entry.connection.isEstablished ? peekClientHello(datagram) : undefined;
      // RFC 6347 §4.2.8: an epoch-0 ClientHello on an established association
      // is a restarted client, unless it is a late copy of this handshake's own.
      if (hello === undefined || equalBytes(hello.random, entry.handshake.clientRandom)) {
        entry.connection.handleDatagram(datagram, now);
        return {
          kind: "connection",
          connection: entry.connection,
          created: false,
          replaced: undefined,
        };
      }
      return this.#accept(datagram, peer, now, entry.connection);
    }
    if (entry !== undefined) this.#table.delete(peer);
    return this.#accept(datagram, peer, now, undefined);
  }

  /** The stateless path: a HelloVerifyRequest, or a new connection once the cookie verifies. */
  #accept(
    datagram: Uint8Array,
    peer: string,
    now: number,
    previous: Connection | undefined,
  ): EndpointOutcome {
    const { records } = parseRecords(datagram);
    const record = records[0];
    if (record === undefined) return { kind: "dropped", reason: "malformed" };
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
    const peerBytes = encoder.encode(peer);
    const verdict = this.#cookies.verify(peerBytes, params, params.cookie, now);
    if (verdict !== "ok") {
      return {
        kind: "hello_verify_request",
        datagram: helloVerifyRequest(record, fragment, this.#cookies.mint(peerBytes, params, now)),
        cookie: verdict,
      };
    }
    if (previous === undefined && this.#table.size >= this.#options.maxConnections) {
      return { kind: "dropped", reason: "capacity" };
    }
    let random: Uint8Array;
    try {
      random = fragment.body.slice(2, 34);
      if (random.length !== 32) return { kind: "dropped", reason: "malformed" };
    } catch {
      return { kind: "dropped", reason: "malformed" };
    }
    const connection = new Connection(this.#options.connection, now);
    const handshake = new ServerHandshake(
      connection,
      this.#options.psk,
      { body: fragment.body.slice(), messageSeq: fragment.messageSeq },
      random,
    );
    // Our epoch-0 records continue from the ClientHello's sequence number, as
    // the HelloVerifyRequest used it (RFC 6347 §4.2.1).
    connection.attach(handshake, record.seq);
    connection.markSeen(0, record.seq);
    previous?.abort("replaced by a new handshake from the same address (RFC 6347 §4.2.8)");
    this.#table.set(peer, { connection, handshake });
    connection.start();
    return { kind: "connection", connection, created: true, replaced: previous };
  }

  /**
   * Fires due timers and idle timeouts; returns the connections it touched,
   * whose output the owner should drain.
   */
  handleTimeouts(now: number): [peer: string, connection: Connection][] {
    const touched: [string, Connection][] = [];
    for (const [peer, { connection }] of this.#table) {
      if (connection.isClosed) continue;
      if (connection.isEstablished && now - connection.lastReceive >= this.#options.idleTimeoutMs) {
        connection.close("idle timeout");
        touched.push([peer, connection]);
        continue;
      }
      const due = connection.pollTimeout();
      if (due !== undefined && due <= now) {
        connection.handleTimeout(now);
        touched.push([peer, connection]);
      }
    }
    return touched;
  }
}

/** The ClientHello at the start of a datagram, if that is what it carries. */
function peekClientHello(datagram: Uint8Array): { random: Uint8Array } | undefined {
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

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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

/** A client connection that sends its first ClientHello on creation. */
export function createClientConnection(
  config: ConnectionConfig,
  options: PskClientOptions,
  now: number,
): Connection {
  const connection = new Connection(config, now);
  connection.attach(new ClientHandshake(connection, options));
  connection.start();
  return connection;
}
