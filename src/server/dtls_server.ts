/**
 * The server shell: a UDP socket (`Deno.listenDatagram`), one timer, and the
 * log, around the sans-I/O {@link ServerEndpoint}. Qt's `DtlsServer` example,
 * done for real: every decrypted datagram goes to an application callback
 * whose answer is encrypted back (by default `to (<address>:<port>): ACK`).
 *
 * @module
 */

import type { Association } from "../connection/association.ts";
import {
  type AdmissionRefusal,
  connectionConfig,
  type DtlsVersion,
  type EndpointOutcome,
  type PeerEntry,
  ServerEndpoint,
} from "../connection/endpoint.ts";
import { checkOptions, type OptionKind } from "../connection/options.ts";
import { sourceAddress } from "../connection/admission.ts";
import { ThrottledLog } from "./throttled_log.ts";
import type { ConnectionEvent } from "../connection/events.ts";
import { nodeProvider } from "../crypto/node.ts";
import type { CryptoProvider, GroupName, RandomSource } from "../crypto/provider.ts";
import { CIPHER_SUITES, type CipherSuite } from "../record/suites.ts";
import { type Logger, LogtapeLogger, toHex } from "./log.ts";
import { bytesForLog, safeText, safeTextBounded } from "./log_text.ts";
import { type Counter, Metrics } from "./metrics.ts";
import { DEMO_IDENTITY_HINT, demoPskStore, type PskStore } from "./psk_store.ts";
import type {
  ClientAuthPolicy,
  KeyLog,
  PskLookup,
  ServerCertificate,
} from "../handshake/server.ts";
import type { PeerCertificate } from "../handshake/driver.ts";
import { bindDatagramSocket, type DatagramSocket, type SocketIo } from "../net/datagram_socket.ts";
import { isLoopbackIp } from "../codec/ip_address.ts";
import { RESUMPTION_DEFAULTS, type ResumptionPolicy } from "../session/resumption.ts";
import { SessionCache } from "../session/session_cache.ts";
import { MIN_TICKET_SECRET, TicketSealer } from "../session/tickets.ts";

/** A peer as the application sees it. */
export interface PeerInfo {
  /** IP address as text. */
  readonly address: string;
  /** UDP port. */
  readonly port: number;
  /** The PSK identity the peer authenticated with (PSK suites), as text. */
  readonly identity?: string;
  /** The certificate the peer authenticated with (client authentication). */
  readonly certificate?: PeerCertificate;
}

/**
 * The application: called with each decrypted datagram; what it returns (if
 * anything) is encrypted and sent back to the same peer. The datagram's
 * bytes are the handler's to keep (they never change afterwards); they are
 * a view into a 1 KiB chunk shared only with the same peer's other records,
 * so a handler that stores many for long should `slice()` them.
 */
export type DatagramHandler = (
  data: Uint8Array,
  peer: PeerInfo,
) => Uint8Array | string | undefined;

/** The Qt example's reply: `to (<address>:<port>): ACK`, as its `peer_info()` formats it. */
export const qtAckHandler: DatagramHandler = (_data, peer) =>
  `to (${peer.address}:${peer.port}): ACK`;

/** Settings of a {@link DtlsServer}. */
/**
 * Defaults of the shell's own options; the engine's are `CONNECTION_DEFAULTS`
 * and `ENDPOINT_DEFAULTS` (`src/connection/endpoint.ts`). Each is defined
 * here once: the command line's defaults are these.
 */
export const SERVER_DEFAULTS = Object.freeze(
  {
    address: "127.0.0.1",
    port: 4433,
    identityHint: DEMO_IDENTITY_HINT,
    groups: Object.freeze(["x25519", "secp256r1", "secp384r1"]) as readonly GroupName[],
    refusalLogIntervalMs: 10_000,
    io: "deno" as SocketIo,
    sessionLifetimeMs: RESUMPTION_DEFAULTS.lifetimeMs,
    sessionCacheSize: RESUMPTION_DEFAULTS.sessionCacheSize,
    tickets: true,
    pskLookupTimeoutMs: 5_000,
    maxPskLookups: 256,
  } as const,
);

/** What the constructor checks of each of the {@link DtlsServerOptions} (see `checkOptions`). */
const SERVER_OPTIONS = {
  address: "other",
  port: "limit",
  psk: "other",
  certificate: "other",
  keyLogFile: "other",
  clientAuth: "other",
  ticketKeys: "other",
  tickets: "other",
  sessionLifetimeMs: "limit",
  sessionCacheSize: "limit",
  cidLength: "limit",
  versions: "other",
  pskLookupTimeoutMs: "limit",
  maxPskLookups: "limit",
  identityHint: "other",
  suites: "other",
  groups: "other",
  mtu: "limit",
  maxConnections: "limit",
  handshakeTimeoutMs: "limit",
  idleTimeoutMs: "limit",
  maxHalfOpen: "limit",
  handshakeRate: "limit",
  handshakeBurst: "limit",
  maxHandshakeMessage: "limit",
  maxReassemblyPerHandshake: "limit",
  maxReassemblyTotal: "limit",
  maxReassemblyPerSource: "limit",
  refusalLogIntervalMs: "limit",
  onDatagram: "other",
  logger: "other",
  logPlaintext: "other",
  provider: "other",
  io: "other",
  receiveBuffer: "limit",
  random: "other",
  clock: "other",
} as const satisfies Record<keyof DtlsServerOptions, OptionKind>;

/**
 * Options of a {@link DtlsServer}: each named as its command-line flag (in
 * camel case, `Ms` for a duration), and left out for its default.
 */
export interface DtlsServerOptions {
  /** Address to bind. IPv6 literals without brackets. */
  readonly address?: string;
  /** UDP port (0 picks a free one). */
  readonly port?: number;
  /** Keys (default: the Qt example's demo credentials). */
  readonly psk?: PskStore;
  /**
   * The certificate the ECDHE_ECDSA / ECDHE_RSA suites use (see
   * `loadServerCertificate`); without one only PSK suites are chosen.
   */
  readonly certificate?: ServerCertificate;
  /**
   * A file to append each session's master secret to, in the NSS key log
   * format (`CLIENT_RANDOM <client random> <master secret>`, hex), so that
   * Wireshark or tshark can decrypt it: for debugging only.
   */
  readonly keyLogFile?: string;
  /**
   * Client authentication on the certificate suites: the check of a
   * client's chain (see `chainVerifier`), and whether a client without a
   * certificate is refused.
   */
  readonly clientAuth?: ClientAuthPolicy;
  /**
   * Secrets of the keys that seal session tickets (32 to 64 random bytes
   * each; see `parseTicketKeyFile`): the first seals, all open. Instances
   * that share them resume each other's tickets. Default: one random key
   * made at start, so tickets outlive neither a restart nor this instance.
   */
  readonly ticketKeys?: readonly Uint8Array[];
  /** Whether session tickets are issued and resumed (RFC 5077; default true). */
  readonly tickets?: boolean;
  /** How long a session may be resumed after its full handshake, ms; 0: no resumption. */
  readonly sessionLifetimeMs?: number;
  /** Sessions cached for resumption by session ID; 0: no session IDs. */
  readonly sessionCacheSize?: number;
  /**
   * Bytes of the Connection ID (RFC 9146) given to clients that offer the
   * extension (AEAD suites); 0: none. A client with one keeps its
   * connection when its address changes (a NAT rebinding).
   */
  readonly cidLength?: number;
  /** The DTLS versions spoken (default both). */
  readonly versions?: readonly DtlsVersion[];
  /**
   * An asynchronous key store's lookup not answered within this is a
   * failed handshake (internal_error), ms.
   */
  readonly pskLookupTimeoutMs?: number;
  /**
   * Most asynchronous key lookups in flight at once; a handshake over it
   * fails (internal_error) without asking the store.
   */
  readonly maxPskLookups?: number;
  /** psk_identity_hint (default: the Qt example's). */
  readonly identityHint?: string;
  /** Suites in preference order (default: all, AEAD with forward secrecy first). */
  readonly suites?: readonly CipherSuite[];
  /** ECDHE groups in preference order. */
  readonly groups?: readonly GroupName[];
  /** Largest datagram sent, bytes. */
  readonly mtu?: number;
  /** Most connections at once. */
  readonly maxConnections?: number;
  /** Handshake deadline, ms. */
  readonly handshakeTimeoutMs?: number;
  /** Idle timeout of established connections, ms. */
  readonly idleTimeoutMs?: number;
  /** Most handshakes past the cookie but not complete at once. */
  readonly maxHalfOpen?: number;
  /** Handshakes per second one source address may start once its cookie verified; 0: no limit. */
  readonly handshakeRate?: number;
  /** Handshakes a quiet source address may start at once. */
  readonly handshakeBurst?: number;
  /** Largest handshake message accepted, bytes. */
  readonly maxHandshakeMessage?: number;
  /** Handshake buffers (reassembly, early records) per connection, bytes. */
  readonly maxReassemblyPerHandshake?: number;
  /** Handshake buffers of all connections together, bytes. */
  readonly maxReassemblyTotal?: number;
  /** Handshake buffers of the connections of one address (IPv6: one /64) together, bytes. */
  readonly maxReassemblyPerSource?: number;
  /** Refusals and cookie floods are logged once per reason per this interval, ms. */
  readonly refusalLogIntervalMs?: number;
  /** The application (default: {@link qtAckHandler}). */
  readonly onDatagram?: DatagramHandler;
  /** Where to log (default: JSON lines on stdout). */
  readonly logger?: Logger;
  /**
   * Log decrypted payloads (default: only with the demo keys on a loopback
   * address, where no one else can be the peer).
   */
  readonly logPlaintext?: boolean;
  /** Crypto primitives (default: {@link nodeProvider}, the runtime's native crypto; `nobleProvider` is the portable one). */
  readonly provider?: CryptoProvider;
  /**
   * Socket implementation (default `deno`, `Deno.listenDatagram`); `libc` is
   * Linux's recvmmsg/sendmmsg through FFI, a batch per system call (needs
   * `--allow-ffi`).
   */
  readonly io?: SocketIo;
  /**
   * Socket receive buffer to ask the kernel for, bytes (`io: "libc"` only;
   * Linux grants at most net.core.rmem_max and the server logs what it got).
   */
  readonly receiveBuffer?: number;
  /** Random source (default: crypto.getRandomValues). */
  readonly random?: RandomSource;
  /** Clock in ms (default: Date.now). */
  readonly clock?: () => number;
}

/** The bound address. */
export interface ListenAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * The longest the one timer sleeps: a clock that jumps (an injected one in
 * tests, or a wall clock set back) is caught up with within this.
 */
const MAX_TIMER_MS = 1_000;

/** How late the timer may fire, to handle close deadlines together, ms (retransmission timers carry 25 % jitter anyway). */
const TIMER_SLACK_MS = 50;
/** The longest delay a timer takes as it is (setTimeout's limit), ms. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** A key lookup's place in the bound: given back once (see DtlsServer#lookupPsk). */
interface LookupSlot {
  held: boolean;
  /** The source address it is charged to, once its connection is known. */
  source: string | undefined;
}

/** Each source address may hold this fraction of the key lookups in flight at most. */
const LOOKUP_SHARES = 4;

/** Whether `value` is a promise or another thenable (a query builder's, say). */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/** An Error for anything a store rejected with (never throws itself). */
function asError(error: unknown): Error {
  if (error instanceof Error) return error;
  try {
    return new Error(String(error));
  } catch {
    return new Error("the key store failed with a value that cannot be shown");
  }
}

/** What a peer that moved may be sent, in multiples of what came from its new address. */
const UNVALIDATED_FACTOR = 3;
/** Most bytes of a received record logged as hex, per datagram. */
const LOGGED_RECORD_BYTES = 64;
/** Most characters of a received payload logged, per datagram. */
const LOGGED_PLAINTEXT_CHARS = 256;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

/** What the server keeps per peer besides its connection: where and how to send, and how the application sees it. */
export interface PeerRoute {
  readonly addr: Deno.NetAddr;
  /** What the handler is told of the peer: its address, then who it proved to be. */
  info: PeerInfo;
  /** Logs a failed send naming the peer: made once per peer, not once per datagram. */
  readonly onSendError: (error: unknown) => void;
  /**
   * Bytes received from and sent to `addr` since the peer moved there by
   * its Connection ID: an address no cookie exchange showed to be the
   * peer's, so what is sent to it stays within 3x what came from it (a
   * peer with keys must not aim our answers at someone else). Absent for
   * an address the cookie exchange validated.
   */
  readonly unvalidated?: { received: number; sent: number };
}

/** The route the server keeps for a peer at `addr` (exported so memory measurements count it). */
export function peerRoute(addr: Deno.NetAddr, onSendError: (error: unknown) => void): PeerRoute {
  return { addr, info: { address: addr.hostname, port: addr.port }, onSendError };
}

/** The resumption a server's options ask for; undefined when it is off. */
function resumptionPolicy(
  options: DtlsServerOptions,
  provider: CryptoProvider,
  random: RandomSource,
): ResumptionPolicy | undefined {
  const lifetimeMs = options.sessionLifetimeMs ?? SERVER_DEFAULTS.sessionLifetimeMs;
  if (lifetimeMs === 0) return undefined;
  const cacheSize = options.sessionCacheSize ?? SERVER_DEFAULTS.sessionCacheSize;
  const ticketsOn = options.tickets ?? SERVER_DEFAULTS.tickets;
  return {
    lifetimeMs,
    cache: cacheSize === 0 ? undefined : new SessionCache({ maxEntries: cacheSize, lifetimeMs }),
    tickets: ticketsOn
      ? new TicketSealer({
        provider,
        random,
        lifetimeMs,
        secrets: options.ticketKeys ?? [random(MIN_TICKET_SECRET)],
      })
      : undefined,
  };
}

/** Default random source: the platform CSPRNG. */
export const systemRandom: RandomSource = (n) => crypto.getRandomValues(new Uint8Array(n));

/** A DTLS 1.2 PSK server on one UDP socket. */
export class DtlsServer {
  readonly #options: DtlsServerOptions;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #endpoint: ServerEndpoint<PeerRoute>;
  readonly #app: DatagramHandler;
  /** Decided in {@link listen} when not given: it depends on the bound address. */
  #logPlaintext: boolean;
  #socket: DatagramSocket | undefined;
  /** The one timer: set for the earliest deadline of any connection or throttled log. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When {@link #timer} fires (Infinity: not set). */
  #timerAt = Infinity;
  #loop: Promise<void> | undefined;
  #closing = false;
  readonly #peerKeys = new PeerKeys();
  #psk: PskStore;
  #certificate: ServerCertificate | undefined;
  #clientAuth: ClientAuthPolicy | undefined;
  readonly #resumption: ResumptionPolicy | undefined;
  /** Counters and gauges of this server (served by `--metrics`). */
  readonly metrics = new Metrics();
  // The counters of every datagram, held rather than looked up by name each time.
  readonly #datagramsReceived: Counter = this.metrics.counter("dtls_datagrams_received_total");
  readonly #bytesReceived: Counter = this.metrics.counter("dtls_bytes_received_total");
  readonly #datagramsSent: Counter = this.metrics.counter("dtls_datagrams_sent_total");
  readonly #bytesSent: Counter = this.metrics.counter("dtls_bytes_sent_total");
  readonly #appReceived: Counter = this.metrics.counter("dtls_app_records_received_total");
  readonly #appSent: Counter = this.metrics.counter("dtls_app_records_sent_total");
  /**
   * Logs a failed send to `peer`, throttled: a peer's source address is its
   * own to spoof (port 0, a broadcast address), and every HelloVerifyRequest
   * to it would fail.
   */
  #sendError(peer: string): (error: unknown) => void {
    return (error) => {
      this.#noise.note(
        this.#clock(),
        "send_failed",
        "error",
        "socket_error",
        `Cannot send to ${peer}: ${safeText(errorMessage(error), 200)}`,
        { peer },
      );
    };
  }
  /** Handshakes refused by admission control: logged once per reason per interval. */
  readonly #refusals: ThrottledLog;
  readonly #cookieLog: ThrottledLog;
  /**
   * Lines any peer can cause many of with one datagram or a flood (empty
   * datagrams and records, failed sends, non-fatal alerts): each kind
   * {@link NOISE_LINES} times per interval, then counted.
   */
  readonly #noise: ThrottledLog;
  /** Debug lines for dropped datagrams and records, throttled the same way, per reason. */
  readonly #datagramDrops: ThrottledLog;
  readonly #recordDrops: ThrottledLog;
  /** Every throttled log, whose summaries the timer flushes. */
  readonly #throttledLogs: readonly ThrottledLog[];
  /** The stack of an error in the application's handler, kept for the line its connection's close writes. */
  readonly #failureStacks = new WeakMap<Association, string>();

  constructor(options: DtlsServerOptions = {}) {
    checkOptions("DtlsServer", options, SERVER_OPTIONS);
    this.#options = options;
    this.#log = options.logger ?? new LogtapeLogger(options.clock);
    this.#clock = options.clock ?? Date.now;
    const psk = options.psk ?? demoPskStore();
    this.#psk = psk;
    this.#certificate = options.certificate;
    this.#clientAuth = options.clientAuth;
    this.#logPlaintext = options.logPlaintext ?? false;
    this.#app = options.onDatagram ?? qtAckHandler;
    const random = options.random ?? systemRandom;
    const provider = options.provider ?? nodeProvider;
    const interval = options.refusalLogIntervalMs ?? SERVER_DEFAULTS.refusalLogIntervalMs;
    // A timer of 2^31 ms or more fires at once: a lookup timeout that long would fail every lookup.
    if ((options.pskLookupTimeoutMs ?? 0) > MAX_TIMER_DELAY_MS) {
      throw new RangeError(
        `Cannot use pskLookupTimeoutMs ${options.pskLookupTimeoutMs}: at most ${MAX_TIMER_DELAY_MS}`,
      );
    }
    this.#resumption = resumptionPolicy(options, provider, random);
    this.#refusals = new ThrottledLog(this.#log, interval);
    // A HelloVerifyRequest is cheap, so a flood of ClientHellos is answered in
    // full; its log lines are not: the first 100 per interval, then a count.
    this.#cookieLog = new ThrottledLog(this.#log, interval, 100);
    this.#noise = new ThrottledLog(this.#log, interval, NOISE_LINES);
    this.#datagramDrops = new ThrottledLog(this.#log, interval, NOISE_LINES);
    this.#recordDrops = new ThrottledLog(this.#log, interval, NOISE_LINES);
    this.#throttledLogs = [
      this.#refusals,
      this.#cookieLog,
      this.#noise,
      this.#datagramDrops,
      this.#recordDrops,
    ];
    this.#endpoint = new ServerEndpoint({
      connection: connectionConfig(provider, random, {
        mtu: options.mtu,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
        maxHandshakeMessage: options.maxHandshakeMessage,
        maxReassemblyPerHandshake: options.maxReassemblyPerHandshake,
      }),
      psk: {
        lookupPsk: (identity) => this.#lookupPsk(identity),
        pskLookupIsAsynchronous: () => this.#psk.asynchronous === true,
        // The key store is replaced on reload: both read the current one.
        dummyKeyLength: () => this.#psk.typicalKeyLength,
        certificate: () => this.#certificate,
        ...(options.keyLogFile === undefined ? {} : { keyLog: keyLogWriter(options.keyLogFile) }),
        clientAuth: () => this.#clientAuth,
        resumption: this.#resumption,
        identityHint: encoder.encode(options.identityHint ?? SERVER_DEFAULTS.identityHint),
        suites: options.suites ?? CIPHER_SUITES,
        groups: options.groups ?? SERVER_DEFAULTS.groups,
        maxIdentityLength: 128,
      },
      maxConnections: options.maxConnections,
      idleTimeoutMs: options.idleTimeoutMs,
      maxHalfOpen: options.maxHalfOpen,
      handshakeRate: options.handshakeRate,
      handshakeBurst: options.handshakeBurst,
      maxReassemblyTotal: options.maxReassemblyTotal,
      maxReassemblyPerSource: options.maxReassemblyPerSource,
      cidLength: options.cidLength,
      versions: options.versions,
    });
    this.#installGauges();
  }

  /**
   * Replaces the keys (e.g. on SIGHUP). Established connections keep the keys
   * they agreed; handshakes from now on use the new store.
   */
  setPskStore(psk: PskStore): void {
    this.#psk = psk;
  }

  /**
   * Replaces the certificate (e.g. on SIGHUP): handshakes from now on send
   * and sign with it; established connections are not affected.
   */
  setCertificate(certificate: ServerCertificate | undefined): void {
    this.#certificate = certificate;
  }

  /**
   * Replaces the client authentication policy (e.g. on SIGHUP, a key taken
   * out of --client-keys): it applies from the next client certificate
   * checked, handshakes under way included; established connections stay.
   */
  setClientAuth(policy: ClientAuthPolicy | undefined): void {
    this.#clientAuth = policy;
  }

  /** Asynchronous key lookups in flight. */
  #pskLookups = 0;
  /** The slot of each lookup the shell has yet to hand to its connection. */
  readonly #lookupSlots = new WeakMap<Promise<unknown>, LookupSlot>();
  /** The slot of each connection waiting for its key. */
  readonly #waitingSlots = new WeakMap<Association, LookupSlot>();
  /** Lookups in flight by source address (IPv6: its /64), for each source's share. */
  readonly #lookupsBySource = new Map<string, number>();

  /**
   * The key store's answer for `identity`. Those that come later are
   * bounded in number (over the bound the store is not asked) and in time.
   */
  #lookupPsk(identity: Uint8Array): PskLookup {
    const store = this.#psk;
    const max = this.#options.maxPskLookups ?? SERVER_DEFAULTS.maxPskLookups;
    // Checked before asking: a store answering later (flagged or not) is
    // asked no more than the bound; a synchronous one never fills it.
    if (this.#pskLookups >= max) {
      this.metrics.inc("dtls_psk_lookups_total", { result: "busy" });
      return Promise.reject(new Error(`${max} key lookups in flight already`));
    }
    const answer = store.lookup(identity);
    if (!isThenable(answer)) return answer;
    const slot: LookupSlot = { held: true, source: undefined };
    this.#pskLookups++;
    const release = () => this.#releaseSlot(slot);
    const timeoutMs = this.#options.pskLookupTimeoutMs ?? SERVER_DEFAULTS.pskLookupTimeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from the key store in ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    const checked = Promise.race([Promise.resolve(answer), timeout]).then(
      (key) => {
        // The driver checks it is a key (or nothing).
        this.metrics.inc("dtls_psk_lookups_total", { result: key == null ? "unknown" : "ok" });
        return key;
      },
      (error: unknown) => {
        this.metrics.inc("dtls_psk_lookups_total", { result: "error" });
        throw asError(error);
      },
    ).finally(() => {
      clearTimeout(timer);
      release();
    });
    this.#lookupSlots.set(checked, slot);
    return checked;
  }

  /** Gives a lookup's slot back, once. */
  #releaseSlot(slot: LookupSlot): void {
    if (!slot.held) return;
    slot.held = false;
    this.#pskLookups--;
    if (slot.source === undefined) return;
    const left = (this.#lookupsBySource.get(slot.source) ?? 1) - 1;
    if (left > 0) this.#lookupsBySource.set(slot.source, left);
    else this.#lookupsBySource.delete(slot.source);
  }

  /**
   * Hands a connection's key lookup its answer when it comes, and sends
   * what that makes. The lookup's slot is charged to the peer's source (a
   * quarter of the bound each at most, so that one source cannot take
   * every slot) and given back as soon as the connection is gone.
   */
  #awaitPskLookup(entry: PeerEntry<PeerRoute>, lookup: Promise<Uint8Array | undefined>): void {
    const connection = entry.connection;
    const slot = this.#lookupSlots.get(lookup);
    let refused: Error | undefined;
    if (slot !== undefined && slot.held) {
      const source = sourceAddress(entry.peer);
      const max = this.#options.maxPskLookups ?? SERVER_DEFAULTS.maxPskLookups;
      const share = Math.max(1, Math.floor(max / LOOKUP_SHARES));
      const bySource = this.#lookupsBySource.get(source) ?? 0;
      if (bySource >= share) {
        this.#releaseSlot(slot);
        this.metrics.inc("dtls_psk_lookups_total", { result: "busy" });
        refused = new Error(`${share} key lookups in flight for ${source} already`);
      } else {
        slot.source = source;
        this.#lookupsBySource.set(source, bySource + 1);
        this.#waitingSlots.set(connection, slot);
      }
    }
    const deliver = (result: Uint8Array | undefined | Error) => {
      try {
        if (slot !== undefined) this.#releaseSlot(slot);
        this.#endpoint.deliverPskLookup(entry, result, this.#clock());
        this.#drain(entry);
        this.#arm();
      } catch (error) {
        this.#internalError("shell", error, entry.peer);
      }
    };
    if (refused !== undefined) {
      // Its answer, when it comes, is for no one.
      lookup.catch(() => {});
      queueMicrotask(() => deliver(refused));
      return;
    }
    lookup.then((key) => deliver(key), (error: unknown) => deliver(asError(error)))
      // deliver catches everything; this only keeps a rejection from escaping.
      .catch(() => {});
  }

  /**
   * Replaces the ticket keys (e.g. on SIGHUP): the first seals from now on,
   * every one opens; a ticket sealed under a key no longer listed makes a
   * full handshake. Throws for keys that cannot be used (nothing changes).
   */
  setTicketKeys(secrets: readonly Uint8Array[]): void {
    const tickets = this.#resumption?.tickets;
    if (tickets === undefined) throw new TypeError("Cannot set ticket keys: tickets are off");
    tickets.setSecrets(secrets);
  }

  #installGauges(): void {
    // Present at zero from the start, so an alert on any increase works.
    for (const where of ["engine", "handler", "log", "timer", "shell", "endpoint"]) {
      this.metrics.counter("dtls_internal_errors_total", { where });
    }
    this.metrics.gauge("dtls_connections", () => this.#endpoint.size);
    this.metrics.gauge("dtls_connections_half_open", () => this.#endpoint.halfOpen);
    this.metrics.gauge("process_resident_memory_bytes", () => Deno.memoryUsage().rss);
    this.metrics.gauge("dtls_heap_used_bytes", () => {
      const { heapUsed, external } = Deno.memoryUsage();
      return heapUsed + external;
    });
    const cache = this.#resumption?.cache;
    this.metrics.gauge("dtls_session_cache_entries", () => cache?.size ?? 0);
  }

  /** True between {@link listen} and {@link close}. */
  get isListening(): boolean {
    return this.#socket !== undefined;
  }

  /** Connections currently held (established and half-open). */
  get connectionCount(): number {
    return this.#endpoint.size;
  }

  /** Handshakes in progress (past the cookie check, not complete). */
  get halfOpenCount(): number {
    return this.#endpoint.halfOpen;
  }

  /** Handshakes refused by admission control since start, by reason. */
  get refused(): Readonly<Record<AdmissionRefusal, number>> {
    return { ...this.#endpoint.refused };
  }

  /** Binds the socket and starts serving. Throws if the address cannot be bound. */
  listen(): ListenAddress {
    if (this.#socket !== undefined) throw new TypeError("Cannot listen: already listening");
    const hostname = this.#options.address ?? SERVER_DEFAULTS.address;
    const port = this.#options.port ?? SERVER_DEFAULTS.port;
    const io = this.#options.io ?? SERVER_DEFAULTS.io;
    const asked = this.#options.receiveBuffer;
    const socket = bindDatagramSocket({ hostname, port, io, receiveBuffer: asked });
    this.#socket = socket;
    this.#closing = false;
    const bound = socket.addr;
    const granted = socket.receiveBufferBytes;
    // The demo key lets anyone who can reach the address in, so their
    // payloads are logged by default only where that is this machine alone.
    if (this.#options.logPlaintext === undefined) {
      this.#logPlaintext = this.#psk.kind === "demo" && isLoopbackIp(bound.hostname);
    }
    this.#log.log(
      "info",
      "listening",
      `Server is listening on address ${bound.hostname} and port ${bound.port}`,
      {
        address: bound.hostname,
        port: bound.port,
        io,
        ...(granted === undefined ? {} : { receiveBufferBytes: granted }),
      },
    );
    if (asked !== undefined && granted !== undefined && granted < asked) {
      this.#log.log(
        "warning",
        "receive_buffer_capped",
        `Asked for a receive buffer of ${asked} bytes, the kernel granted ${granted} ` +
          "(raise net.core.rmem_max to allow more)",
        { asked, granted },
      );
    }
    if (socket.receiveDrops !== undefined) {
      this.metrics.gauge("dtls_socket_receive_drops_total", () => socket.receiveDrops ?? 0);
    }
    this.#loop = socket.serve(this.#onReceived, this.#onReceiveError);
    this.#arm();
    return { address: bound.hostname, port: bound.port };
  }

  /**
   * Sends close_notify to every peer, then closes the socket. Resolves when
   * the receive loop has ended.
   */
  async close(): Promise<void> {
    const socket = this.#socket;
    if (socket === undefined) return;
    this.#closing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const sends: Promise<unknown>[] = [];
    let peers = 0;
    for (const entry of [...this.#endpoint.entries()]) {
      if (!entry.connection.isClosed) {
        entry.connection.close("server shutting down");
        peers++;
      }
      this.#drain(entry, sends);
    }
    await Promise.allSettled(sends);
    this.#log.log("info", "shutdown", `Sent close_notify to ${peers} peer(s); closing the socket`, {
      peers,
    });
    this.#socket = undefined;
    socket.close();
    await this.#loop;
    this.#log.log("info", "closed", "Server stopped");
  }

  readonly #onReceived = (datagram: Uint8Array, addr: Deno.NetAddr): void => {
    try {
      // One clock read per datagram, for the endpoint and the timer.
      const now = this.#clock();
      this.#onDatagram(datagram, addr, now);
      // A new handshake's retransmission timer may be due before the timer.
      this.#arm(now);
    } catch (error) {
      // A bug must not take the server down for every other peer.
      this.#internalError("shell", error);
    }
  };

  /**
   * Sets the one timer for the earliest deadline of any connection
   * (`ServerEndpoint.pollTimeout`) or throttled log, unless it is set for
   * that or earlier already; never more than {@link MAX_TIMER_MS} away.
   */
  #arm(now = this.#clock()): void {
    if (this.#socket === undefined || this.#closing) return;
    let due = this.#endpoint.pollTimeout() ?? Infinity;
    for (const log of this.#throttledLogs) due = Math.min(due, log.nextFlush() ?? Infinity);
    // Up to TIMER_SLACK_MS late: deadlines that fall close together (every
    // new handshake's first retransmission is due about a second out) are
    // handled in one wake-up, and the timer is not set again for each.
    const at = Math.min(due + TIMER_SLACK_MS, now + MAX_TIMER_MS);
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#onTimer, Math.max(0, at - now));
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#onTick();
    try {
      this.#arm();
    } catch (error) {
      // Never without a timer while listening, and never a throw out of one.
      this.#internalError("timer", error);
      if (this.#socket !== undefined && !this.#closing) {
        this.#timer = setTimeout(this.#onTimer, MAX_TIMER_MS);
      }
    }
  };

  /**
   * Counts and logs an internal error (a bug, ours or the application's).
   * Never throws, even when the logger does.
   */
  #internalError(where: string, error: unknown, peer?: string, stack?: string): void {
    this.metrics.inc("dtls_internal_errors_total", { where });
    try {
      this.#log.log(
        "error",
        "internal_error",
        `Internal error (${where})${peer === undefined ? "" : ` with ${peer}`}: ${
          safeText(errorMessage(error), REASON_CHARS)
        }`,
        {
          where,
          ...(peer === undefined ? {} : { peer }),
          stack: stack ?? (error instanceof Error ? safeText(error.stack ?? "", 4_000) : undefined),
        },
      );
    } catch {
      // The logger itself is broken: the metric has counted it.
    }
  }

  readonly #onReceiveError = (error: unknown): void => {
    if (this.#closing) return;
    this.#log.log("error", "socket_error", `Cannot receive: ${errorMessage(error)}`);
  };

  #onDatagram(datagram: Uint8Array, addr: Deno.NetAddr, now: number): void {
    if (this.#closing) return;
    const peer = this.#peerKeys.of(addr);
    if (datagram.length === 0) {
      // Qt's example calls this a spurious read: the socket woke with nothing in it.
      this.#noise.note(
        now,
        "spurious_read",
        "warning",
        "spurious_read",
        `Empty datagram from ${peer}`,
        { peer },
      );
      return;
    }
    this.#datagramsReceived.add();
    this.#bytesReceived.add(datagram.length);
    const outcome: EndpointOutcome<PeerRoute> = this.#endpoint.handleDatagram(datagram, peer, now);
    switch (outcome.kind) {
      case "dropped":
        this.metrics.inc("dtls_datagrams_dropped_total", { reason: outcome.reason });
        if (outcome.reason === "internal_error") {
          this.#internalError("endpoint", new Error("stateless path failed; nothing kept"), peer);
          return;
        }
        if (isRefusal(outcome.reason)) {
          this.#refusals.note(
            now,
            outcome.reason,
            "warning",
            "handshake_refused",
            `Refused a handshake from ${peer}: ${REFUSAL_TEXT[outcome.reason]}`,
            { peer },
          );
          return;
        }
        this.#datagramDrops.note(
          now,
          outcome.reason,
          "debug",
          "datagram_dropped",
          `Dropped datagram from ${peer}: ${outcome.reason}`,
          { peer },
        );
        return;
      case "alert":
        this.metrics.inc("dtls_stateless_alerts_total", { description: outcome.description });
        this.#refusals.note(
          now,
          outcome.description,
          "warning",
          "alert_sent",
          `Sent fatal alert ${outcome.description} to ${peer} (no state kept)${
            outcome.reason === undefined ? "" : `: ${outcome.reason}`
          }`,
          {
            peer,
            level_alert: "fatal",
            description: outcome.description,
            ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
          },
        );
        this.#send(outcome.datagram, addr, this.#sendError(peer));
        return;
      case "hello_verify_request":
      case "hello_retry_request": {
        const verify = outcome.kind === "hello_verify_request";
        this.metrics.inc(
          verify ? "dtls_hello_verify_requests_total" : "dtls_hello_retry_requests_total",
        );
        if (outcome.cookie !== "missing") {
          this.metrics.inc("dtls_cookie_failures_total", { reason: outcome.cookie });
        }
        this.#cookieLog.note(
          now,
          outcome.cookie,
          "info",
          "cookie_sent",
          `Sent ${
            verify ? "HelloVerifyRequest" : "HelloRetryRequest"
          } to ${peer} (cookie ${outcome.cookie})`,
          { peer },
        );
        this.#send(outcome.datagram, addr, this.#sendError(peer));
        return;
      }
      case "connection": {
        if (outcome.created) {
          this.metrics.inc("dtls_handshakes_started_total");
          outcome.entry.route = peerRoute(addr, this.#sendError(peer));
          this.#log.log("info", "cookie_verified", `Cookie verified for ${peer}`, { peer });
          if (outcome.replaced !== undefined) {
            this.#log.log(
              "info",
              "connection_replaced",
              `${peer} restarted: new handshake replaces the old connection`,
              { peer },
            );
            // The old connection's own end (its closed event, its metrics);
            // aborted, it has nothing to send.
            this.#drain({ peer, connection: outcome.replaced, route: undefined });
          }
          this.#log.log("info", "handshake_started", `Handshake in progress with ${peer}`, {
            peer,
          });
        }
        if (outcome.movedFrom !== undefined) this.#moved(outcome.entry, outcome.movedFrom, addr);
        const unvalidated = outcome.entry.route?.unvalidated;
        if (unvalidated !== undefined && outcome.entry.peer === peer) {
          unvalidated.received += datagram.length;
        }
        this.#drain(outcome.entry);
        return;
      }
    }
  }

  /**
   * A peer with a Connection ID now sends from `addr` (an authenticated
   * record, the newest it sent): answers go there, and the handler sees it.
   */
  #moved(entry: PeerEntry<PeerRoute>, from: string, addr: Deno.NetAddr): void {
    const route = entry.route;
    if (route !== undefined) {
      entry.route = {
        addr,
        info: { ...route.info, address: addr.hostname, port: addr.port },
        onSendError: this.#sendError(entry.peer),
        unvalidated: { received: 0, sent: 0 },
      };
    }
    this.metrics.inc("dtls_cid_rebinds_total");
    // Throttled: a peer that can authenticate can also move often.
    this.#noise.note(
      this.#clock(),
      "peer_address_changed",
      "info",
      "peer_address_changed",
      `Peer ${from} moved to ${entry.peer} (Connection ID)`,
      { peer: entry.peer, from },
    );
  }

  /**
   * Handles a connection's events and sends its datagrams; the sends are
   * added to `sends` when the caller waits for them.
   */
  #drain(entry: PeerEntry<PeerRoute>, sends?: Promise<unknown>[]): void {
    const { peer, connection, route } = entry;
    for (let event = connection.pollEvent(); event; event = connection.pollEvent()) {
      if (event.type === "psk_lookup") {
        this.#awaitPskLookup(entry, event.lookup);
        continue;
      }
      try {
        this.#onEvent(peer, route, connection, event);
      } catch (error) {
        // Our handling of this connection's event failed (the logger threw,
        // say): that ends this connection, not the server.
        connection.failInternal(error, "log");
      }
    }
    if (route !== undefined) {
      const unvalidated = route.unvalidated;
      for (let d = connection.pollTransmit(); d; d = connection.pollTransmit()) {
        if (unvalidated !== undefined) {
          if (unvalidated.sent + d.length > UNVALIDATED_FACTOR * unvalidated.received) {
            this.metrics.inc("dtls_datagrams_dropped_total", { reason: "unvalidated_address" });
            continue;
          }
          unvalidated.sent += d.length;
        }
        const sent = this.#send(d, route.addr, route.onSendError);
        sends?.push(sent);
      }
    }
    if (connection.isClosed) {
      this.#endpoint.forget(entry);
      // Gone before its key came: its lookup's slot is free for others.
      const slot = this.#waitingSlots.get(connection);
      if (slot !== undefined) this.#releaseSlot(slot);
    }
  }

  #onEvent(
    peer: string,
    route: PeerRoute | undefined,
    connection: Association,
    event: ConnectionEvent,
  ): void {
    const log = this.#log;
    switch (event.type) {
      case "psk_identity":
        // One level for both: a filtered line costs less than a written one,
        // and the time to answer must not say which identities exist.
        log.log(
          "info",
          "psk_identity",
          `PSK identity from ${peer}: "${bytesForLog(event.identityBytes)}"`,
          {
            peer,
            identity: bytesForLog(event.identityBytes),
            known: event.known,
          },
        );
        return;
      case "handshake_complete": {
        this.metrics.inc("dtls_handshakes_completed_total");
        if (event.resumed === undefined) this.metrics.inc("dtls_full_handshakes_total");
        else this.metrics.inc("dtls_resumptions_total", { kind: event.resumed });
        this.metrics.observeHandshake((this.#clock() - connection.createdAt) / 1000);
        const psk = event.identityBytes.length > 0 || event.peerCertificate === undefined;
        if (route !== undefined) {
          route.info = {
            ...route.info,
            ...(psk ? { identity: event.identity } : {}),
            ...(event.peerCertificate === undefined ? {} : { certificate: event.peerCertificate }),
          };
        }
        log.log(
          "info",
          "handshake_complete",
          `Handshake with ${peer} complete: ${event.suite}, ${event.version}`,
          {
            peer,
            suite: event.suite,
            version: event.version,
            identity: bytesForLog(event.identityBytes),
            extendedMasterSecret: event.extendedMasterSecret,
            encryptThenMac: event.encryptThenMac,
            group: event.group,
            ...(event.resumed === undefined ? {} : { resumed: event.resumed }),
            ...(event.peerCertificate === undefined ? {} : {
              peerSubject: safeText(event.peerCertificate.subject, REASON_CHARS),
              peerSpkiSha256: event.peerCertificate.spkiSha256,
            }),
          },
        );
        return;
      }
      case "data": {
        this.#appReceived.add();
        // The hex dump costs more than the record's decryption: build it
        // only when the line will be written.
        if (log.enabled?.("info") ?? true) {
          // The peer chooses the size (up to ~16 KiB a record): a line per
          // datagram shows a bounded head of each, and says when it cut.
          const cut = event.record.length > LOGGED_RECORD_BYTES;
          const fields: Record<string, unknown> = {
            peer,
            ciphertext: toHex(event.record.subarray(0, LOGGED_RECORD_BYTES)),
            bytes: event.data.length,
          };
          let truncated = cut;
          if (this.#logPlaintext) {
            const plaintext = safeTextBounded(decoder.decode(event.data), LOGGED_PLAINTEXT_CHARS);
            fields.plaintext = plaintext.text;
            truncated ||= plaintext.truncated;
          }
          if (truncated) fields.truncated = true;
          log.log("info", "datagram", `Received ${event.data.length} bytes from ${peer}`, fields);
        }
        if (event.data.length === 0) {
          this.#noise.note(
            this.#clock(),
            "empty_record",
            "warning",
            "empty_datagram",
            `${peer}: 0-byte datagram after decryption`,
            { peer },
          );
          return;
        }
        this.#answer(route, connection, event.data);
        return;
      }
      case "alert": {
        const level = event.level === "fatal" ? "warning" : "info";
        const name = event.direction === "sent" ? "alert_sent" : "alert_received";
        const msg = `${
          event.direction === "sent" ? "Sent" : "Received"
        } ${event.level} alert ${event.description} ${
          event.direction === "sent" ? "to" : "from"
        } ${peer}`;
        const fields = { peer, level_alert: event.level, description: event.description };
        // A peer can pack warning alerts that close nothing into one datagram.
        const closes = event.level === "fatal" || event.description === "close_notify";
        if (event.direction === "received" && !closes) {
          this.#noise.note(this.#clock(), "warning_alert", level, name, msg, fields);
        } else {
          log.log(level, name, msg, fields);
        }
        return;
      }
      case "dropped":
        this.metrics.inc("dtls_records_dropped_total", { reason: event.reason });
        this.#recordDrops.note(
          this.#clock(),
          event.reason,
          "debug",
          "record_dropped",
          `Dropped a record from ${peer}: ${event.reason}`,
          { peer, epoch: event.epoch },
        );
        return;
      case "resumable_session":
        // A client's event: a server's connections make none.
        return;
      case "psk_lookup":
        // Taken by #drain, which knows the entry.
        return;
      case "ticket_refused":
        this.metrics.inc("dtls_tickets_refused_total", { reason: event.reason });
        log.log(
          "info",
          "ticket_refused",
          `Session ticket from ${peer} not resumed (${event.reason}): full handshake`,
          { peer, reason: event.reason },
        );
        return;
      case "key_update":
        this.metrics.inc("dtls_key_updates_total", { direction: event.direction });
        log.log(
          "debug",
          "key_update",
          `KeyUpdate ${event.direction === "sent" ? "to" : "from"} ${peer}: epoch ${event.epoch}`,
          { peer, direction: event.direction, epoch: event.epoch },
        );
        return;
      case "retransmit":
        this.metrics.inc("dtls_retransmissions_total", { cause: event.cause });
        log.log(
          "debug",
          "retransmit",
          `Retransmitted the last flight to ${peer} (${event.cause})`,
          {
            peer,
            cause: event.cause,
          },
        );
        return;
      case "closed":
        if (event.internal !== undefined) {
          this.#internalError(
            event.internal,
            new Error(event.reason),
            peer,
            this.#failureStacks.get(connection),
          );
        }
        if (event.error && !event.afterHandshake) {
          this.metrics.inc("dtls_handshakes_failed_total", { reason: failureLabel(event) });
        }
        log.log(
          event.error ? "warning" : "info",
          "connection_closed",
          `Connection with ${peer} closed: ${safeText(event.reason, REASON_CHARS)}`,
          {
            peer,
            reason: safeText(event.reason, REASON_CHARS),
            error: event.error,
          },
        );
        return;
      default:
        return event satisfies never;
    }
  }

  #answer(
    route: PeerRoute | undefined,
    connection: Association,
    data: Uint8Array,
  ): void {
    if (route === undefined || connection.isClosed) return;
    let reply: Uint8Array | string | undefined;
    try {
      reply = this.#app(data, route.info);
      if (reply === undefined) return;
      connection.send(typeof reply === "string" ? encoder.encode(reply) : reply);
    } catch (error) {
      // The handler threw, or returned what cannot be sent (over 2^14
      // bytes, not bytes): this conversation cannot go on, the others can.
      // Its message may quote the peer's data (JSON.parse's does): logged
      // only where plaintext is, and bounded.
      const described = this.#describeHandlerError(error);
      this.#failureStacks.set(connection, described.stack);
      connection.failInternal(new Error(described.message), "handler");
      return;
    }
    this.#appSent.add();
  }

  /** A handler's error as it may be logged: its message only where plaintext is, bounded. */
  #describeHandlerError(error: unknown): { message: string; stack: string } {
    const name = error instanceof Error ? error.name : typeof error;
    const message = this.#logPlaintext
      ? safeText(errorMessage(error), REASON_CHARS)
      : `${name} (its message is not logged: it may quote the peer's data; see --log-plaintext)`;
    // The stack's first line repeats the message: only the frames are kept.
    const frames = error instanceof Error && error.stack !== undefined
      ? error.stack.split("\n").filter((line) => /^\s+at /.test(line)).slice(0, 12)
      : [];
    return { message, stack: safeText([message, ...frames].join("\n"), 4_000) };
  }

  #onTick(): void {
    // A timer callback that throws would end the process: nothing escapes,
    // and a failing log flush does not keep the timers from running.
    let now = 0;
    try {
      now = this.#clock();
      for (const log of this.#throttledLogs) log.flush(now);
    } catch (error) {
      this.#internalError("timer", error);
    }
    try {
      for (const entry of this.#endpoint.handleTimeouts(now)) {
        try {
          this.#drain(entry);
        } catch (error) {
          entry.connection.failInternal(error, "log");
          this.#internalError("timer", error, entry.peer);
        }
      }
    } catch (error) {
      this.#internalError("timer", error);
    }
  }

  #send(
    datagram: Uint8Array,
    addr: Deno.NetAddr,
    onError: (error: unknown) => void,
  ): Promise<unknown> {
    const socket = this.#socket;
    if (socket === undefined) return Promise.resolve();
    this.#datagramsSent.add();
    this.#bytesSent.add(datagram.length);
    return socket.send(datagram, addr, onError);
  }
}

/** Lines of one noisy kind logged per interval before the rest are only counted. */
const NOISE_LINES = 5;

/** The longest reason or error message a line carries, characters. */
const REASON_CHARS = 300;

/** Whether an alert description is one of the RFC's (not `alert_<n>` for an unknown code). */
function isKnownAlert(description: string): boolean {
  return !/^alert_\d+$/.test(description);
}

/**
 * The `reason` label of a failed handshake: `timeout`, the fatal alert we
 * sent, `peer_` and the one we received (a peer's unknown alert code is
 * `unknown`, so that peers cannot add series), or `other`.
 */
function failureLabel(event: Extract<ConnectionEvent, { type: "closed" }>): string {
  if (event.cause === "handshake_timeout") return "timeout";
  if (event.alert === undefined) return "other";
  const description = isKnownAlert(event.alert.description) ? event.alert.description : "unknown";
  return event.alert.direction === "sent" ? description : `peer_${description}`;
}

const REFUSAL_TEXT: Record<AdmissionRefusal, string> = {
  capacity: "connection table full (maxConnections)",
  half_open: "too many handshakes in progress (maxHalfOpen)",
  rate: "too many handshakes from this address (handshakeRate)",
};

function isRefusal(reason: string): reason is AdmissionRefusal {
  return reason in REFUSAL_TEXT;
}

/**
 * {@link peerKey} remembering the last key made for each port: a peer sends
 * from the same address again and again, and a key string built per
 * datagram is garbage per datagram. Bounded by the 65,536 ports.
 */
export class PeerKeys {
  readonly #byPort = new Map<number, { readonly hostname: string; readonly key: string }>();

  of(addr: Deno.NetAddr): string {
    const known = this.#byPort.get(addr.port);
    if (known !== undefined && known.hostname === addr.hostname) return known.key;
    const key = peerKey(addr);
    this.#byPort.set(addr.port, { hostname: addr.hostname, key });
    return key;
  }
}

/** The connection-table key of a socket address: `1.2.3.4:5` or `[::1]:5`. */
export function peerKey(addr: Deno.NetAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Appends `CLIENT_RANDOM <client random> <master secret>` lines to `path`
 * (created readable by the owner alone), one per handshake, synchronously:
 * a line written late would miss the session it is for.
 */
function keyLogWriter(path: string): KeyLog {
  const file = openKeyLog(path);
  const encoder = new TextEncoder();
  return (clientRandom, secret, label = "CLIENT_RANDOM") => {
    const line = encoder.encode(`${label} ${toHex(clientRandom)} ${toHex(secret)}\n`);
    for (let at = 0; at < line.length;) at += file.writeSync(line.subarray(at));
  };
}

/**
 * Opens (creating it, mode 0600) the file master secrets are appended to,
 * refusing a symbolic link (another user could point it at a file of
 * theirs), anything but a regular file (a FIFO would block the server) and
 * a file others may read, which is made the owner's alone first. Throws an
 * Error saying which.
 */
export function openKeyLog(path: string): Deno.FsFile {
  let existing: Deno.FileInfo | undefined;
  try {
    existing = Deno.lstatSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (existing?.isSymlink) throw new Error("it is a symbolic link");
  if (existing !== undefined && !existing.isFile) throw new Error("it is not a regular file");
  if (existing?.mode != null && (existing.mode & 0o077) !== 0) Deno.chmodSync(path, 0o600);
  const file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  const opened = file.statSync();
  if (!opened.isFile) {
    file.close();
    throw new Error("it is not a regular file");
  }
  return file;
}
