/**
 * A DTLS client on its own UDP socket, 1.2 or 1.3: the counterpart of Qt's
 * DTLS client example, used by the tests, the load tool and the client
 * command. A thin shell around the sans-I/O client connection.
 *
 * @module
 */

import type { Association } from "../connection/association.ts";
import {
  connectionConfig,
  createClientConnection,
  createClientConnection13,
} from "../connection/endpoint.ts";
import { suite13ById, SUITES_13 } from "../record/suites13.ts";
import type { ConnectionEvent } from "../connection/events.ts";
import { nodeProvider } from "../crypto/node.ts";
import type { CryptoProvider, GroupName, RandomSource } from "../crypto/provider.ts";
import { CERTIFICATE_SUITES, type CipherSuite, PSK_SUITES } from "../record/suites.ts";
import { chainVerifier } from "../pki/chain_verifier.ts";
import type { CertificateWithKey, SavedSession } from "../handshake/driver.ts";
import type { RetransmitPolicy } from "../handshake/flight.ts";

/** Settings of a {@link DtlsClient}. */
export interface DtlsClientOptions {
  /** Server address (IPv4 or IPv6 literal, or a host name). */
  readonly hostname: string;
  /** Server port. */
  readonly port: number;
  /** psk_identity. */
  readonly identity: string;
  /** The key. */
  readonly psk: Uint8Array;
  /**
   * Certificates to trust, DER (a CA bundle, or a server's own certificate
   * to pin): with them the certificate suites are offered too, and the
   * server's chain must end at one of them.
   */
  readonly ca?: readonly Uint8Array[];
  /** The name the server's certificate must carry (default: `hostname`). */
  readonly serverName?: string;
  /**
   * Raw public keys (SubjectPublicKeyInfo DER) pinned for the server (RFC
   * 7250): with them the certificate suites are offered, the server asked
   * for its key rather than a chain, and exactly these are trusted.
   */
  readonly serverKeys?: readonly Uint8Array[];
  /** Our certificate and key, for a server that asks for one (client authentication). */
  readonly certificate?: CertificateWithKey;
  /** Suites offered, in order (default: the PSK suites; with `ca`, the certificate suites). */
  readonly suites?: readonly CipherSuite[];
  /** Groups offered (default x25519, P-256). */
  readonly groups?: readonly GroupName[];
  /** Local address to bind (default: 127.0.0.1, or ::1 for an IPv6 server). */
  readonly localAddress?: string;
  /** Largest datagram sent. */
  readonly mtu?: number;
  /** Crypto primitives (default: {@link nodeProvider}). */
  readonly provider?: CryptoProvider;
  /** Random source. */
  readonly random?: RandomSource;
  /** Flight retransmission timing (default: RFC 6347's 1 s, doubling to 60 s). */
  readonly retransmit?: RetransmitPolicy;
  /** A handshake not complete after this long is abandoned, ms (default 30 s). */
  readonly handshakeTimeoutMs?: number;
  /** A session of an earlier connection ({@link DtlsClient.savedSession}) to resume. */
  readonly resume?: SavedSession;
  /** Ask for a session ticket (default true); without, a server caches the session by ID. */
  readonly tickets?: boolean;
  /**
   * The protocol version spoken (default 1.2). DTLS 1.3 offers the PSK and,
   * with `ca`, takes the server's certificate too; `suites` and
   * `serverKeys` are 1.2's and not used there.
   */
  readonly version?: "1.2" | "1.3";
  /** DTLS 1.3: whether the PSK is offered (default true; false: the certificate alone, with `ca`). */
  readonly offerPsk?: boolean;
}

/** What the handshake agreed. */
export interface ClientSession {
  /** IANA name of the suite. */
  readonly suite: string;
  /** "DTLS 1.2" or "DTLS 1.3". */
  readonly version: string;
  /** How the session was resumed; absent after a full handshake. */
  readonly resumed?: "ticket" | "session_id";
}

const RECEIVE_BUFFER = 65_536;

/** One client connection. */
export class DtlsClient {
  readonly #options: DtlsClientOptions;
  #socket: Deno.DatagramConn | undefined;
  #connection: Association | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #received: Uint8Array[] = [];
  #waiters: (() => void)[] = [];
  #session: ClientSession | undefined;
  #saved: SavedSession | undefined;
  #closedReason: string | undefined;
  #loop: Promise<void> | undefined;
  readonly #server: Deno.NetAddr;
  /** Every event of the connection, in order (for tests and the CLI). */
  readonly events: ConnectionEvent[] = [];

  constructor(options: DtlsClientOptions) {
    this.#options = options;
    this.#server = { transport: "udp", hostname: options.hostname, port: options.port };
  }

  /** The local UDP port (after {@link connect}). */
  get localPort(): number {
    return (this.#socket?.addr as Deno.NetAddr | undefined)?.port ?? 0;
  }

  /**
   * What a later connection can resume this one's session with, once the
   * handshake completed and the server made it resumable. Secret.
   */
  get savedSession(): SavedSession | undefined {
    return this.#saved;
  }

  /** Why the connection ended, if it did. */
  get closedReason(): string | undefined {
    return this.#closedReason;
  }

  /** Runs the handshake; resolves with the session or rejects with the reason it failed. */
  async connect(timeoutMs = 30_000): Promise<ClientSession> {
    const o = this.#options;
    const local = o.localAddress ?? (o.hostname.includes(":") ? "::1" : "127.0.0.1");
    const socket = Deno.listenDatagram({ transport: "udp", hostname: local, port: 0 });
    this.#socket = socket;
    const random = o.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
    const overrides: Parameters<typeof connectionConfig>[2] = {};
    if (o.mtu !== undefined) Object.assign(overrides, { mtu: o.mtu });
    if (o.retransmit !== undefined) Object.assign(overrides, { retransmit: o.retransmit });
    if (o.handshakeTimeoutMs !== undefined) {
      Object.assign(overrides, { handshakeTimeoutMs: o.handshakeTimeoutMs });
    }
    const config = connectionConfig(o.provider ?? nodeProvider, random, overrides);
    const verifyServer = o.ca === undefined
      ? undefined
      : chainVerifier({ anchors: o.ca, serverName: o.serverName ?? o.hostname });
    const groups = o.groups ?? ["x25519", "secp256r1", "secp384r1"];
    if (o.version === "1.3") {
      // A 1.2 session cannot be resumed in 1.3: only a 1.3 ticket is offered.
      const resume = o.resume !== undefined && suite13ById(o.resume.suiteId) !== undefined
        ? o.resume
        : undefined;
      this.#connection = createClientConnection13(config, {
        ...(o.offerPsk === false
          ? {}
          : { identity: new TextEncoder().encode(o.identity), psk: o.psk }),
        suites: SUITES_13,
        groups,
        ...(verifyServer === undefined ? {} : { verifyServer }),
        ...(resume === undefined ? {} : { resume }),
        ...(o.certificate === undefined ? {} : { certificate: o.certificate }),
      }, Date.now());
    } else {
      this.#connection = createClientConnection(config, {
        identity: new TextEncoder().encode(o.identity),
        psk: o.psk,
        suites: o.suites ??
          (o.ca === undefined && o.serverKeys === undefined ? PSK_SUITES : CERTIFICATE_SUITES),
        groups,
        ...(verifyServer === undefined ? {} : { verifyServer }),
        ...(o.certificate === undefined ? {} : { certificate: o.certificate }),
        ...(o.serverKeys === undefined ? {} : { serverKeys: o.serverKeys }),
        ...(o.resume === undefined ? {} : { resume: o.resume }),
        ...(o.tickets === undefined ? {} : { tickets: o.tickets }),
      }, Date.now());
    }
    this.#loop = this.#receiveLoop(socket);
    this.#flush();
    await this.#until(
      () => this.#session !== undefined || this.#closedReason !== undefined,
      timeoutMs,
    );
    if (this.#session === undefined) {
      const reason = this.#closedReason ?? "timeout";
      await this.close();
      throw new Error(`Cannot connect: ${reason}`);
    }
    return this.#session;
  }

  /** Sends one datagram of application data. */
  send(data: Uint8Array | string): void {
    const connection = this.#connection;
    if (connection === undefined) throw new TypeError("Cannot send: not connected");
    connection.send(typeof data === "string" ? new TextEncoder().encode(data) : data);
    this.#flush();
  }

  /** The next application datagram from the server. */
  async receive(timeoutMs = 10_000): Promise<Uint8Array> {
    await this.#until(
      () => this.#received.length > 0 || this.#closedReason !== undefined,
      timeoutMs,
    );
    const next = this.#received.shift();
    if (next === undefined) throw new Error(`Cannot receive: ${this.#closedReason ?? "timeout"}`);
    return next;
  }

  /** Sends close_notify (if connected) and closes the socket. */
  async close(): Promise<void> {
    const connection = this.#connection;
    if (connection !== undefined && !connection.isClosed) {
      connection.close();
      await this.#flush();
    }
    clearTimeout(this.#timer);
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket !== undefined) {
      socket.close();
      await this.#loop;
    }
    this.#wake();
  }

  async #receiveLoop(socket: Deno.DatagramConn): Promise<void> {
    const buffer = new Uint8Array(RECEIVE_BUFFER);
    while (this.#socket === socket) {
      let datagram: Uint8Array;
      try {
        [datagram] = await socket.receive(buffer);
      } catch {
        return;
      }
      this.#connection?.handleDatagram(datagram, Date.now());
      this.#flush();
    }
  }

  #flush(): Promise<unknown> {
    const connection = this.#connection;
    const socket = this.#socket;
    if (connection === undefined) return Promise.resolve();
    for (let e = connection.pollEvent(); e; e = connection.pollEvent()) {
      this.events.push(e);
      if (e.type === "handshake_complete") {
        this.#session = {
          suite: e.suite,
          version: e.version,
          ...(e.resumed === undefined ? {} : { resumed: e.resumed }),
        };
      } else if (e.type === "resumable_session") this.#saved = e.session;
      else if (e.type === "data") this.#received.push(e.data);
      else if (e.type === "closed") this.#closedReason = e.reason;
    }
    const sends: Promise<unknown>[] = [];
    if (socket !== undefined) {
      for (let d = connection.pollTransmit(); d; d = connection.pollTransmit()) {
        sends.push(socket.send(d, this.#server).catch(() => {}));
      }
    }
    clearTimeout(this.#timer);
    const due = connection.pollTimeout();
    if (due !== undefined && socket !== undefined) {
      this.#timer = setTimeout(() => {
        connection.handleTimeout(Date.now());
        this.#flush();
      }, Math.max(0, due - Date.now()));
    }
    this.#wake();
    return Promise.all(sends);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  async #until(done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
