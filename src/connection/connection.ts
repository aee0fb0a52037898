/**
 * One DTLS 1.2 association, sans-I/O: bytes and `now` in; datagrams, events
 * and the next timeout out (quinn-proto / dimpl style).
 *
 *     conn.handleDatagram(bytes, now); conn.handleTimeout(now);
 *     conn.send(data); conn.close();
 *     while ((d = conn.pollTransmit())) socket.send(d);
 *     while ((e = conn.pollEvent())) ...;
 *     conn.pollTimeout() // when to call handleTimeout next
 *
 * This module owns the association's lifecycle: it walks a datagram's
 * records, has the record layer (`src/record/half_conn.ts`, one half per
 * direction) open and seal them, dispatches them by content type, routes
 * handshake messages to a role-specific {@link HandshakeDriver} through a
 * host object of its own, and packs flights into datagrams.
 *
 * @module
 */

import { type FlightItem, FlightTimer } from "../handshake/flight.ts";
import {
  fragmentHandshakeMessage,
  HANDSHAKE_HEADER_LENGTH,
  HandshakeReassembler,
  parseHandshakeFragments,
} from "../handshake/fragments.ts";
import {
  AlertDescription,
  AlertLevel,
  alertName,
  decodeAlert,
  encodeAlert,
} from "../handshake/messages.ts";
import {
  ContentType,
  countMalformedRecords,
  MAX_PLAINTEXT_LENGTH,
  RECORD_HEADER_LENGTH,
  RecordCursor,
  type RecordView,
} from "../record/header.ts";
import { ReadHalf, SequenceExhausted, WriteHalf } from "../record/half_conn.ts";
import { errorText, failureOf, ProtocolError } from "../handshake/errors.ts";
import type {
  ConnectionConfig,
  HandshakeDriver,
  HandshakeEvent,
  HandshakeHost,
} from "../handshake/driver.ts";
import type { RecordProtection } from "../record/protection.ts";
import type {
  CloseCause,
  ClosingAlert,
  ConnectionEvent,
  DropReason,
  InternalOrigin,
} from "./events.ts";
import { BytePool } from "../codec/byte_pool.ts";
import { MemoryAccount, NO_ACCOUNT } from "../memory/budget.ts";
import type { Association } from "./association.ts";

export type { ConnectionConfig };

type Phase = "handshaking" | "established" | "closed";

/**
 * How many times the bytes of an unauthenticated datagram a peer-triggered
 * resend may send back: before the handshake completes the address was only
 * checked by the cookie, and a spoofer could aim our flight at it (RFC 9147
 * §5.1 asks for the care of RFC 9000 §8.1's three times).
 */
const UNAUTHENTICATED_RESEND_FACTOR = 3;

/** How a connection starts: its role's driver, and what the endpoint already did for it. */
export interface ConnectionSetup {
  /** Makes the role's handshake driver, given the host it talks to (private to the connection). */
  readonly driver: (host: HandshakeHost) => HandshakeDriver;
  /**
   * The account its handshake buffers are charged to (default: one of its
   * own, limited to `maxReassemblyPerHandshake`).
   */
  readonly memory?: MemoryAccount;
  /**
   * The epoch-0 record number of the ClientHello the endpoint verified: our
   * epoch-0 records continue from it (RFC 6347 §4.2.1), and a copy of it,
   * or of an older record, is not the peer repeating its flight.
   */
  readonly helloSeq?: number;
}

/** One DTLS association. Create with {@link createServerConnection} / {@link createClientConnection}. */
export class Connection implements Association {
  /** The time the connection was created (its handshake began). */
  readonly createdAt: number;
  readonly #config: ConnectionConfig;
  readonly #inbound: HandshakeReassembler;
  #now: number;
  readonly #driver: HandshakeDriver;
  #phase: Phase = "handshaking";
  readonly #handshakeDeadline: number;
  readonly #timer: FlightTimer;
  readonly #read: ReadHalf;
  readonly #write: WriteHalf;
  /** Early records given back by a ChangeCipherSpec, opened once the driver has returned. */
  #replay: readonly RecordView[] = NO_RECORDS;
  /**
   * Handshake buffers this connection holds for its peer, charged to the
   * endpoint's budget; let go once established, when it holds none.
   */
  #memory: MemoryAccount;
  /** Bytes of the datagram being handled: the most a peer-triggered resend may answer it with (times a factor). */
  #datagramBytes = 0;
  /** The earliest time the peer may make us resend our flight again. */
  #nextPeerResend = -Infinity;
  /** Bytes of datagrams the last (re)transmission of our flight took. */
  #flightBytes = 0;
  /** Whether the repeat being handled came in an authenticated record. */
  #peerRepeat: "authenticated" | "unauthenticated" = "unauthenticated";
  /**
   * Where application data handed out comes from: a pool of this
   * connection's own, so that no view an application holds shows another
   * peer's bytes; made on the first record, dropped when idle.
   */
  #received: BytePool | undefined = undefined;
  /** The Connection ID the peer puts in records it sends us (RFC 9146), once agreed. */
  #connectionId: Uint8Array | undefined = undefined;
  /**
   * Whether a record of the datagram being handled authenticated and is the
   * newest of its epoch yet. Static: one datagram is handled at a time, to
   * the end, and an idle connection keeps no field for it.
   */
  static #newest = false;
  /**
   * Whether the datagram being handled came from an address that is not
   * the peer's, routed here by its Connection ID: only records that carry
   * our CID in the epoch in use count, and one that does not authenticate
   * is noise, never the peer's failure.
   */
  static #elsewhere = false;

  readonly #transmits = new OutputQueue<Uint8Array>();
  readonly #events = new OutputQueue<ConnectionEvent>();
  #lastReceive: number;
  #lastProgress: number;

  /** @internal Use the role factories. */
  constructor(config: ConnectionConfig, now: number, setup: ConnectionSetup) {
    this.#config = config;
    this.createdAt = now;
    this.#now = now;
    this.#lastReceive = now;
    this.#lastProgress = now;
    this.#handshakeDeadline = now + config.handshakeTimeoutMs;
    this.#timer = new FlightTimer(config.retransmit, config.random);
    this.#memory = setup.memory ??
      new MemoryAccount(undefined, "", config.maxReassemblyPerHandshake);
    this.#inbound = new HandshakeReassembler({
      maxMessageLength: config.maxHandshakeMessage,
      maxBufferedBytes: config.maxReassemblyPerHandshake,
      account: this.#memory,
    });
    this.#read = new ReadHalf(this.#memory);
    this.#write = new WriteHalf(setup.helloSeq ?? 0);
    if (setup.helloSeq !== undefined) this.#read.markUsed(setup.helloSeq);
    this.#driver = setup.driver(new Connection.#Host(this));
  }

  /**
   * What the driver may do to its connection: an object of its own, so that
   * none of it is the connection's public API. A class nested here reaches
   * the connection's private state, and its methods live on one prototype:
   * each connection pays for one small object, not a closure per method.
   */
  static readonly #Host = class ConnectionHost implements HandshakeHost {
    readonly #c: Connection;
    constructor(connection: Connection) {
      this.#c = connection;
    }
    get config(): ConnectionConfig {
      return this.#c.#config;
    }
    get now(): number {
      return this.#c.#now;
    }
    get inbound(): HandshakeReassembler {
      return this.#c.#inbound;
    }
    sendFlight(items: FlightItem[], armTimer: boolean): void {
      this.#c.#sendFlight(items, armTimer);
    }
    resendFlight(): void {
      this.#c.#resendFlight();
    }
    disarmTimer(): void {
      this.#c.#timer.disarm();
    }
    setPendingRead(protection: RecordProtection): void {
      this.#c.#read.setPending(protection);
    }
    activatePendingRead(): void {
      this.#c.#activatePendingRead();
    }
    peekHeldHandshakes(): Uint8Array[] {
      return this.#c.#read.peekHeldHandshakes();
    }
    setWrite(epoch: number, protection: RecordProtection): void {
      this.#c.#write.install(epoch, protection);
    }
    emit(event: HandshakeEvent): void {
      this.#c.#events.push(event);
    }
    sendWarning(description: number): void {
      this.#c.#sendAlert(AlertLevel.Warning, description);
    }
    established(): void {
      this.#c.#established();
    }
    useConnectionId(cid: Uint8Array): void {
      this.#c.#connectionId = cid;
    }
  };

  /**
   * The Connection ID the peer's records carry (RFC 9146), once the
   * handshake agreed on one: the endpoint routes them by it.
   */
  get connectionId(): Uint8Array | undefined {
    return this.#connectionId;
  }

  /** Bytes of handshake buffers held for the peer now (reassembly and early records). */
  get bufferedBytes(): number {
    return this.#memory.used;
  }

  /** Stops the retransmission timer of the last flight (a peer's repeat can still bring it). */
  stopRetransmitting(): void {
    this.#timer.disarm();
  }

  /** Runs the driver's opening move (the server answers its ClientHello, the client sends one). */
  start(): void {
    try {
      this.#driver.start();
    } catch (error) {
      this.#fail(error);
    }
  }

  /** True once the handshake completed and until the connection closes. */
  get isEstablished(): boolean {
    return this.#phase === "established";
  }

  /** True once closed (by either side or by failure); the owner may drop it. */
  get isClosed(): boolean {
    return this.#phase === "closed";
  }

  /**
   * When the handshake last moved on (a message or ChangeCipherSpec taken)
   * or, once keys are in use, a record last authenticated: what a spoofer
   * cannot fake once the handshake is past epoch 0.
   */
  get lastProgress(): number {
    return this.#lastProgress;
  }

  /** When the peer was last heard from (an authenticated or epoch-0 record). */
  get lastReceive(): number {
    return this.#lastReceive;
  }

  /**
   * Lets go of the chunk application data is copied into (what was handed
   * out stays valid): the endpoint calls this for a connection gone quiet,
   * so an idle connection holds no buffer.
   */
  releaseIdleMemory(): void {
    this.#received = undefined;
  }

  /** Whether it holds a chunk for received data that {@link releaseIdleMemory} would let go. */
  get holdsIdleMemory(): boolean {
    return this.#received !== undefined;
  }

  // ---- input -------------------------------------------------------------

  /**
   * Handles one datagram from the peer. True when one of its records
   * authenticated and is the newest the peer has sent in the epoch in use:
   * what may move the peer to the address it came from (RFC 9146 §6).
   *
   * `elsewhere`: it came from another address than the peer's, routed here
   * by the Connection ID of its first record. Anyone can send that (the CID
   * is not secret), so only an established connection takes it, and only
   * its records with our CID in the epoch in use; the rest is dropped.
   */
  handleDatagram(datagram: Uint8Array, now: number, elsewhere = false): boolean {
    this.#now = now;
    Connection.#newest = false;
    Connection.#elsewhere = elsewhere;
    if (this.#phase === "closed") return false;
    if (elsewhere && this.#phase !== "established") {
      this.#drop("unexpected", -1);
      return false;
    }
    this.#datagramBytes = datagram.length;
    const cidLength = this.#connectionId?.length ?? 0;
    try {
      if (countMalformedRecords(datagram, cidLength) > 0) this.#drop("malformed", -1);
      const cursor = CURSOR.reset(datagram, cidLength);
      while (cursor.next()) {
        if (this.isClosed) break;
        this.#handleRecord(cursor);
      }
    } catch (error) {
      this.#fail(error);
    }
    return Connection.#newest && !this.isClosed;
  }

  /**
   * The answer of the PSK lookup this connection's `psk_lookup` event
   * announced: the key, undefined for an unknown identity, or an Error
   * when the lookup failed or took too long (the handshake then fails with
   * internal_error). Ignored once the connection is closed.
   */
  deliverPskLookup(result: Uint8Array | undefined | Error, now: number): void {
    this.#now = now;
    Connection.#elsewhere = false;
    if (this.#phase === "closed") return;
    try {
      this.#driver.onPskLookup?.(result);
      // A ChangeCipherSpec taken meanwhile gives back what came early: read now.
      const early = this.#replay;
      this.#replay = NO_RECORDS;
      for (const r of early) {
        if (this.isClosed) break;
        this.#openAndDispatch(r);
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Handles one parsed record (the endpoint may have parsed the datagram already). */
  handleRecord(record: RecordView, now: number): void {
    this.#now = now;
    Connection.#elsewhere = false;
    if (this.#phase === "closed") return;
    this.#datagramBytes = record.raw.length;
    try {
      this.#handleRecord(record);
    } catch (error) {
      this.#fail(error);
    }
  }

  /** One record, then the early records its ChangeCipherSpec gave back, if any. */
  #handleRecord(record: RecordView): void {
    if (Connection.#elsewhere && !this.#ownCidRecord(record)) {
      return this.#drop("unexpected", record.epoch);
    }
    this.#openAndDispatch(record);
    // The driver has returned: what came early for the new epoch is taken
    // now, in order, so nothing re-enters the driver while it runs.
    if (this.#replay.length === 0) return;
    const early = this.#replay;
    this.#replay = NO_RECORDS;
    // They came in earlier datagrams: they say nothing of where this one came from.
    const newest = Connection.#newest;
    for (const r of early) {
      if (this.isClosed) break;
      this.#openAndDispatch(r);
    }
    Connection.#newest = newest;
  }

  /** Whether `record` is a tls12_cid record with our CID in the epoch we read. */
  #ownCidRecord(record: RecordView): boolean {
    const cid = this.#connectionId;
    if (
      cid === undefined || record.type !== ContentType.Tls12Cid ||
      record.epoch !== this.#read.epoch || record.epoch === 0 || record.cid.length !== cid.length
    ) {
      return false;
    }
    for (let i = 0; i < cid.length; i++) if (record.cid[i] !== cid[i]) return false;
    return true;
  }

  #openAndDispatch(record: RecordView): void {
    if (this.#phase === "closed") return;
    const plaintext = this.#read.open(record);
    if (typeof plaintext === "string") {
      if (plaintext === "held") return this.#driver.onHeldRecord?.();
      this.#drop(plaintext, record.epoch);
      // The first protected record of a handshake failing to authenticate means
      // the two sides derived different keys (a wrong PSK): fail cleanly now
      // rather than time out (RFC 5246 §7.2.2 bad_record_mac).
      // Only a handshake record (the Finished) counts: a stray alert or data
      // record of an old association on a reused port is noise.
      if (
        plaintext === "bad_mac" && this.#phase === "handshaking" && record.epoch > 0 &&
        (record.type === ContentType.Handshake || record.type === ContentType.Tls12Cid) &&
        !Connection.#elsewhere
      ) {
        this.#fail(
          new ProtocolError(AlertDescription.BadRecordMac, "Cannot authenticate Finished"),
        );
      }
      return;
    }
    // Only a record of the epoch in use shows the peer is there: once keys
    // are, an epoch-0 record is anyone's and must not keep the connection.
    if (record.epoch === this.#read.epoch) {
      this.#lastReceive = this.#now;
      if (this.#read.isNewest) Connection.#newest = true;
    }
    if (record.epoch > 0) this.#lastProgress = this.#now;
    this.#dispatch(record, this.#read.contentType, plaintext);
  }

  /**
   * Whether an old message in the record being handled is the peer
   * repeating its flight. A peer's retransmission comes in new records
   * (RFC 6347 §4.2.4: every record takes the next sequence number), so in
   * epoch 0, which has no replay window, a record numbered as one already
   * handled, or as one from before this connection, is a copy the network
   * made, not a repeat. Noise can only spoil the numbers it guesses, one
   * by one, and never makes the peer's own records dropped.
   */
  #isPeerRepeat(epoch: number): boolean {
    return epoch > 0 || !this.#read.isCopy;
  }

  /**
   * The application's copy of a record's plaintext, from this connection's
   * pool, unless it already has a buffer to itself; the record layer's copy
   * (in the shared pool) is wiped, so that pool only ever holds bytes
   * already public or the engine's own.
   */
  #keep(plaintext: Uint8Array): Uint8Array {
    // A plaintext that is the whole of a buffer of its own (node:crypto's
    // are) shows nothing else: it is handed on as it is.
    if (plaintext.byteOffset === 0 && plaintext.byteLength === plaintext.buffer.byteLength) {
      return plaintext;
    }
    const copy = (this.#received ??= new BytePool(RECEIVED_CHUNK_BYTES)).allocate(
      plaintext.length,
    );
    copy.set(plaintext);
    plaintext.fill(0);
    return copy;
  }

  /** A record that opened, of content type `type` (a tls12_cid record's real one). */
  #dispatch(record: RecordView, type: number, plaintext: Uint8Array): void {
    const stale = record.epoch < this.#read.epoch;
    switch (type) {
      case ContentType.Handshake:
        if (stale) return this.#handleStaleHandshake(record.epoch);
        return this.#handleHandshake(record.epoch, plaintext);
      case ContentType.ChangeCipherSpec:
        if (stale || record.epoch !== 0) return this.#drop("unexpected", record.epoch);
        if (plaintext.length !== 1 || plaintext[0] !== 1) {
          throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode ChangeCipherSpec");
        }
        return this.#driver.onChangeCipherSpec();
      case ContentType.Alert:
        // An unprotected alert after keys are in use is not the peer's (or is
        // stale): ignore it rather than let anyone on the path close us.
        if (stale) return this.#drop("unexpected", record.epoch);
        return this.#handleAlert(plaintext);
      case ContentType.ApplicationData:
        if (this.#phase !== "established" || record.epoch === 0 || stale) {
          return this.#drop("unexpected", record.epoch);
        }
        // The peer sends data only once it has our last flight: it will not
        // ask for it again, so an idle connection keeps none of it.
        if (this.#timer.flight.length > 0) this.#timer.clear();
        this.#events.push({ type: "data", data: this.#keep(plaintext), record: record.raw });
        return;
      default:
        // RFC 5246 §6: an unexpected record type MUST get unexpected_message.
        // Only an authenticated record is known to be the peer's: in epoch 0
        // (or a stale epoch) anyone could have sent it, so it is dropped as
        // noise (RFC 6347 §4.1.2.7).
        if (stale || record.epoch === 0) return this.#drop("unknown_type", record.epoch);
        throw new ProtocolError(
          AlertDescription.UnexpectedMessage,
          `Cannot handle record: unknown content type ${type}`,
        );
    }
  }

  #handleHandshake(epoch: number, plaintext: Uint8Array): void {
    const fragments = parseHandshakeFragments(plaintext);
    for (const fragment of fragments) {
      if (this.isClosed) return;
      // Once established nothing is buffered: the only message a peer may
      // start then (a ClientHello asking to renegotiate) must come whole.
      const whole = fragment.fragmentOffset === 0 && fragment.fragmentLength === fragment.length;
      const verdict =
        this.#phase === "established" && fragment.messageSeq >= this.#inbound.nextSeq &&
          !(whole && fragment.messageSeq === this.#inbound.nextSeq)
          ? "ignored"
          : this.#inbound.add(fragment, epoch);
      switch (verdict) {
        case "buffered":
        case "future":
          break;
        case "stale":
        case "ignored":
          this.#drop("unexpected", epoch);
          break;
        case "old":
          // The peer repeated a message we already processed: it lost our
          // last flight. Resend once per repeated flight (its first fragment).
          if (fragment.fragmentOffset === 0 && this.#isPeerRepeat(epoch)) {
            this.#peerRepeat = epoch > 0 ? "authenticated" : "unauthenticated";
            this.#driver.onPeerRetransmit(fragment.messageSeq);
          }
          break;
        case "inconsistent":
          throw new ProtocolError(
            AlertDescription.IllegalParameter,
            "Cannot reassemble handshake message: inconsistent fragments",
          );
        case "overflow":
          throw new ProtocolError(
            AlertDescription.HandshakeFailure,
            "Cannot reassemble handshake message: too large",
          );
        case "busy":
          // The endpoint's shared reassembly memory is full: not this peer's
          // fault, so drop the fragment and let its retransmission retry.
          this.#drop("buffer_full", epoch);
          break;
      }
      // Complete messages go out at once (a whole one is never charged).
      for (let m = this.#inbound.next(); m !== undefined; m = this.#inbound.next()) {
        if (this.isClosed) return;
        this.#lastProgress = this.#now;
        this.#driver.onMessage(m.msgType, m.messageSeq, m.body, m.epoch);
      }
    }
  }

  /**
   * A handshake record of an epoch we no longer read (epoch 0 once keys are
   * in use) is unauthenticated: anyone on the path could have sent it, so it
   * never reaches the handshake logic, never fails the connection and never
   * makes us resend. A peer that repeats its final flight (RFC 6347 §4.2.4)
   * repeats its Finished too, in the new epoch: that authenticated copy is
   * what triggers the resend.
   */
  #handleStaleHandshake(epoch: number): void {
    this.#drop("epoch", epoch);
  }

  #handleAlert(plaintext: Uint8Array): void {
    let alert;
    try {
      alert = decodeAlert(plaintext);
    } catch {
      throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode alert");
    }
    const description = alertName(alert.description);
    const fatal = alert.level === AlertLevel.Fatal;
    this.#events.push({
      type: "alert",
      direction: "received",
      level: fatal ? "fatal" : "warning",
      description,
    });
    if (alert.description === AlertDescription.CloseNotify) {
      // RFC 5246 §7.2.1: answer close_notify with close_notify.
      this.#trySendAlert(AlertLevel.Warning, AlertDescription.CloseNotify);
      return this.#close("close_notify received", false, "peer_closed");
    }
    if (fatal) {
      return this.#close(`fatal alert received: ${description}`, true, "peer_alert", {
        direction: "received",
        description,
      });
    }
  }

  // ---- timers ------------------------------------------------------------

  /** When {@link handleTimeout} should next be called, or undefined. */
  pollTimeout(): number | undefined {
    if (this.#phase === "closed") return undefined;
    const retransmit = this.#timer.deadline;
    if (this.#phase !== "handshaking") return retransmit;
    return retransmit === undefined
      ? this.#handshakeDeadline
      : Math.min(retransmit, this.#handshakeDeadline);
  }

  /** Fires due timers: retransmission, handshake deadline. */
  handleTimeout(now: number): void {
    this.#now = now;
    if (this.#phase === "closed") return;
    try {
      if (this.#phase === "handshaking" && now >= this.#handshakeDeadline) {
        return this.#close("handshake timeout", true, "handshake_timeout");
      }
      switch (this.#timer.poll(now)) {
        case "resend":
          // A peer's repeat right after this gets no second copy.
          this.#nextPeerResend = now + this.#config.retransmit.initialMs;
          this.#events.push({ type: "retransmit", cause: "timeout" });
          this.#transmitFlight(this.#timer.flight);
          return;
        case "give_up":
          if (this.#phase === "handshaking") {
            this.#close("handshake timeout", true, "handshake_timeout");
          } else this.#timer.clear();
          return;
        case "none":
          return;
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  // ---- application ---------------------------------------------------------

  /**
   * Encrypts and queues application data. Throws unless established, or for
   * data over 2^14 bytes (the caller's mistakes); a failure of the record
   * layer (sequence numbers used up, a broken cipher) closes the connection
   * instead.
   */
  send(data: Uint8Array): void {
    if (this.#phase !== "established") {
      throw new TypeError(`Cannot send application data: connection is ${this.#phase}`);
    }
    if (data.length > MAX_PLAINTEXT_LENGTH) {
      throw new RangeError("Cannot send application data: over 2^14 bytes");
    }
    try {
      this.#transmits.push(this.#write.seal(ContentType.ApplicationData, data));
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Sends close_notify and closes. Safe to call in any state; never throws. */
  close(reason = "closed locally", cause: "local" | "idle_timeout" = "local"): void {
    if (this.#phase === "closed") return;
    this.#trySendAlert(AlertLevel.Warning, AlertDescription.CloseNotify);
    this.#close(reason, false, cause);
  }

  /** Closes without an alert (used by the endpoint's policies, e.g. replaced by a new handshake). */
  abort(reason: string, cause: "aborted" | "replaced" = "aborted"): void {
    if (this.#phase === "closed") return;
    this.#close(reason, true, cause);
  }

  /**
   * Ends the connection for an error outside it (the application's handler,
   * the owner's logging): internal_error to the peer if it can be sent, and
   * a `closed` event marked internal. Never throws.
   */
  failInternal(error: unknown, origin: InternalOrigin = "handler"): void {
    if (this.#phase === "closed") return;
    this.#trySendAlert(AlertLevel.Fatal, AlertDescription.InternalError);
    this.#close(
      `internal error: ${errorText(error)}`,
      true,
      "internal",
      INTERNAL_ERROR_SENT,
      origin,
    );
  }

  // ---- output --------------------------------------------------------------

  /** The next datagram to send, or undefined. */
  pollTransmit(): Uint8Array | undefined {
    return this.#transmits.poll();
  }

  /** The next event, or undefined. */
  pollEvent(): ConnectionEvent | undefined {
    return this.#events.poll();
  }

  // ---- the driver's host ------------------------------------------------------

  #sendFlight(items: FlightItem[], armTimer: boolean): void {
    this.#timer.start(items, this.#now, armTimer);
    this.#transmitFlight(items);
  }

  /**
   * Resends our last flight because the peer repeated its own (RFC 6347
   * §4.2.4): at most once per initial retransmission interval, and for a
   * repeat that did not authenticate, only when the flight is at most three
   * times the datagram that asked for it, so a spoofed or packed datagram
   * cannot make us amplify.
   */
  #resendFlight(): void {
    const repeat = this.#peerRepeat;
    this.#peerRepeat = "unauthenticated";
    if (this.#timer.flight.length === 0) return;
    if (this.#now < this.#nextPeerResend) return this.#drop("resend_limited", -1);
    // Room is kept for the one alert the same datagram might still cause.
    const alertRoom = RECORD_HEADER_LENGTH + 2 + this.#write.overhead();
    if (
      repeat === "unauthenticated" &&
      this.#flightBytes + alertRoom > UNAUTHENTICATED_RESEND_FACTOR * this.#datagramBytes
    ) {
      return this.#drop("resend_limited", -1);
    }
    this.#nextPeerResend = this.#now + this.#config.retransmit.initialMs;
    // RFC 6347 §4.2.4: a retransmission goes back to WAITING, its timer
    // started again, so the timer does not send the flight again at once.
    this.#timer.restart(this.#now);
    this.#events.push({ type: "retransmit", cause: "peer_repeat" });
    this.#transmitFlight(this.#timer.flight);
  }

  #activatePendingRead(): void {
    if (!this.#read.hasPending) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        "Cannot change cipher spec: no keys yet",
      );
    }
    // Opened after the driver returns (#handleRecord), never inside it.
    this.#replay = this.#read.activatePending();
    this.#lastProgress = this.#now;
    // What older epochs left half-built cannot be the peer's now.
    this.#inbound.dropEpochsBelow(this.#read.epoch);
  }

  #established(): void {
    this.#phase = "established";
    // Nothing is buffered once established (see #handleHandshake), so an
    // idle connection keeps no account.
    this.#inbound.reset(NO_ACCOUNT);
    this.#read.settle();
    this.#memory.releaseAll();
    this.#memory = NO_ACCOUNT;
  }

  // ---- internals -------------------------------------------------------------

  #drop(reason: DropReason, epoch: number): void {
    this.#events.push({ type: "dropped", reason, epoch });
  }

  /**
   * The one way a failure ends the connection: the alert for it, if one can
   * still be sent, and `closed`. Never throws, so no failure in one
   * connection's path can escape into its owner's loop or timer.
   */
  #fail(error: unknown): void {
    if (this.#phase === "closed") return;
    if (error instanceof SequenceExhausted) {
      // No sequence number is left for an alert either (RFC 6347 §4.1).
      return this.#close(error.message, true, "sequence_exhausted");
    }
    const failure = failureOf(error);
    this.#trySendAlert(AlertLevel.Fatal, failure.alert);
    this.#close(
      failure.reason,
      true,
      failure.cause,
      failure.closingAlert,
      failure.internal,
    );
  }

  #close(
    reason: string,
    error: boolean,
    cause: CloseCause,
    alert?: ClosingAlert,
    internal?: InternalOrigin,
  ): void {
    const afterHandshake = this.#phase === "established";
    this.#phase = "closed";
    this.#timer.clear();
    this.#read.settle();
    this.#replay = NO_RECORDS;
    this.#inbound.clear();
    this.#memory.releaseAll();
    this.#events.push({ type: "closed", reason, error, afterHandshake, cause, alert, internal });
  }

  /** Sends an alert if the record layer still can; a connection ending anyway does without. */
  #trySendAlert(level: number, description: number): void {
    try {
      this.#sendAlert(level, description);
    } catch {
      // Sequence numbers used up or write keys broken: close silently.
    }
  }

  #sendAlert(level: number, description: number): void {
    this.#events.push({
      type: "alert",
      direction: "sent",
      level: level === AlertLevel.Fatal ? "fatal" : "warning",
      description: alertName(description),
    });
    this.#transmits.push(this.#write.seal(ContentType.Alert, encodeAlert(level, description)));
  }

  /**
   * @internal Seals `plaintext` as one record of `type` in the current write
   * epoch and queues it, bypassing the handshake logic. For tests that play a
   * misbehaving peer.
   */
  injectRecord(type: number, plaintext: Uint8Array): void {
    this.#transmits.push(this.#write.seal(type, plaintext));
  }

  #transmitFlight(items: readonly FlightItem[]): void {
    this.#flightBytes = 0;
    const records: Uint8Array[] = [];
    for (const item of items) {
      if (item.kind === "change_cipher_spec") {
        records.push(this.#write.seal(ContentType.ChangeCipherSpec, CCS_BODY, item.epoch));
        // Everything we write after our ChangeCipherSpec uses the new epoch.
        this.#write.changeCipherSpec(item.epoch);
        continue;
      }
      const overhead = this.#write.overhead(item.epoch);
      const room = this.#config.mtu - RECORD_HEADER_LENGTH - HANDSHAKE_HEADER_LENGTH - overhead;
      if (room < 1) throw new Error(`MTU ${this.#config.mtu} too small`);
      for (
        const fragment of fragmentHandshakeMessage(item.msgType, item.messageSeq, item.body, room)
      ) {
        records.push(this.#write.seal(ContentType.Handshake, fragment, item.epoch));
      }
    }
    this.#pack(records);
  }

  /** Packs records into as few datagrams of at most `mtu` bytes as their order allows. */
  #pack(records: Uint8Array[]): void {
    let batch: Uint8Array[] = [];
    let size = 0;
    const flush = () => {
      if (batch.length === 0) return;
      const datagram = new Uint8Array(size);
      let at = 0;
      for (const r of batch) {
        datagram.set(r, at);
        at += r.length;
      }
      this.#transmits.push(datagram);
      this.#flightBytes += datagram.length;
      batch = [];
      size = 0;
    };
    for (const record of records) {
      if (size + record.length > this.#config.mtu) flush();
      batch.push(record);
      size += record.length;
    }
    flush();
  }
}

const CCS_BODY = new Uint8Array([1]);

/** No early records to open: one shared empty list rather than one per connection. */
const NO_RECORDS: readonly RecordView[] = Object.freeze([]);

const INTERNAL_ERROR_SENT: ClosingAlert = { direction: "sent", description: "internal_error" };

/** The account of a connection that holds no handshake buffers: it can hold nothing. */

/**
 * Chunk size of a connection's pool of received application data: a dozen
 * 64-byte messages per buffer; records over half of it get one of their own.
 */
const RECEIVED_CHUNK_BYTES = 1024;

/**
 * The one record walk of every connection: a datagram is handled to the
 * end without yielding, and nothing keeps the view (early records are
 * copied), so no two walks overlap.
 */
const CURSOR = new RecordCursor();

/**
 * A first-in first-out queue that is pushed to and drained to empty over
 * and over, as a connection's outgoing datagrams and events are.
 *
 * The usual load is one item at a time (a record in, an event and an answer
 * out), so the first item waits in a field of its own and only a second one
 * opens an array: an array emptied after each drain would allocate its
 * storage again on every datagram, and one kept would cost every idle
 * connection its slots. Array items are read from a head index
 * (Array.prototype.shift would move every remaining element on each call),
 * and a drained slot is cleared so that the queue holds nothing it handed
 * out.
 */
export class OutputQueue<T> {
  #first: T | undefined = undefined;
  #rest: (T | undefined)[] | undefined = undefined;
  #head = 0;

  push(item: T): void {
    const rest = this.#rest;
    if (rest === undefined || this.#head >= rest.length) {
      if (this.#first === undefined) {
        this.#first = item;
        return;
      }
    }
    if (rest === undefined) this.#rest = [item];
    else rest.push(item);
  }

  /** The oldest item not yet taken, or undefined when none is left. */
  poll(): T | undefined {
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      return first;
    }
    const rest = this.#rest;
    if (rest === undefined) return undefined;
    if (this.#head < rest.length) {
      const item = rest[this.#head];
      rest[this.#head++] = undefined;
      return item;
    }
    this.#rest = undefined;
    this.#head = 0;
    return undefined;
  }
}
