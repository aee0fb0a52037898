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
 * This module owns the record layer of the association (epochs, sequence
 * numbers, replay windows, packing records into datagrams) and routes
 * handshake messages to a role-specific {@link HandshakeDriver}.
 *
 * @module
 */

import { OutputQueue } from "./output_queue.ts";
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
  DTLS_1_0,
  DTLS_1_2,
  MAX_PLAINTEXT_LENGTH,
  RECORD_HEADER_LENGTH,
  type RecordView,
} from "../record/header.ts";
import { NULL_PROTECTION, type RecordProtection } from "../record/protection.ts";
import { RecentSequences, ReplayWindow } from "../record/replay.ts";
import { alertFor, ProtocolError } from "../handshake/errors.ts";
import type { ConnectionConfig, HandshakeDriver, HandshakeHost } from "../handshake/driver.ts";

export type { ConnectionConfig };
import type {
  CloseCause,
  ClosingAlert,
  ConnectionEvent,
  DropReason,
  InternalOrigin,
} from "./events.ts";
import type { HandshakeEvent } from "../handshake/driver.ts";
import { BytePool } from "../codec/byte_pool.ts";
import { BUFFER_OVERHEAD, MemoryAccount } from "../memory/budget.ts";
import { countMalformedRecords, RecordCursor } from "../record/header.ts";

type Phase = "handshaking" | "established" | "closed";

interface ReadEpoch {
  readonly protection: RecordProtection;
  readonly replay: ReplayWindow;
}

/** Records of the next epoch held while its ChangeCipherSpec is awaited (reordering). */
const MAX_EARLY_RECORDS = 4;

/**
 * The last sequence number we write in an epoch is 2^48 - 2: RFC 6347 §4.1
 * forbids wrapping, so a connection that has used them all closes instead.
 */
const MAX_WRITE_SEQ = 2 ** 48 - 2;

/**
 * How many times the bytes of an unauthenticated datagram a peer-triggered
 * resend may send back: before the handshake completes the address was only
 * checked by the cookie, and a spoofer could aim our flight at it (RFC 9147
 * §5.1 asks for the care of RFC 9000 §8.1's three times).
 */
const UNAUTHENTICATED_RESEND_FACTOR = 3;

/** Thrown when an epoch's sequence numbers are used up: the connection must close. */
class SequenceExhausted extends Error {
  constructor(epoch: number) {
    super(`Cannot send: sequence numbers of epoch ${epoch} exhausted`);
    this.name = "SequenceExhausted";
  }
}

/** One DTLS association. Create with {@link createServerConnection} / {@link createClientConnection}. */
export class Connection implements HandshakeHost {
  readonly config: ConnectionConfig;
  readonly inbound: HandshakeReassembler;
  /** The time the connection was created (its handshake began). */
  readonly createdAt: number;
  #now: number;
  #driver!: HandshakeDriver;
  #phase: Phase = "handshaking";
  readonly #handshakeDeadline: number;
  readonly #timer: FlightTimer;

  #reads: (ReadEpoch | undefined)[] = [
    { protection: NULL_PROTECTION, replay: new ReplayWindow() },
  ];
  #readEpoch = 0;
  #pendingRead: RecordProtection | undefined;
  /** Records of the next epoch that came before its ChangeCipherSpec, copied and charged. */
  #early: RecordView[] = [];
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
  /** Epoch-0 record numbers up to this one came before this connection (the verified ClientHello). */
  #epoch0Floor = -1;
  /** The numbers of the last epoch-0 handshake records handled (made when needed, dropped once established). */
  #recent0: RecentSequences | undefined;
  /** Whether the record being handled is a copy: its number was among those. */
  #recordIsCopy = false;
  /** Whether the repeat being handled came in an authenticated record. */
  #peerRepeat: "authenticated" | "unauthenticated" = "unauthenticated";
  /**
   * Where application data handed out comes from: a pool of this
   * connection's own, so that no view an application holds shows another
   * peer's bytes; made on the first record, dropped when idle.
   */
  #received: BytePool | undefined = undefined;

  #writes: (RecordProtection | undefined)[] = [NULL_PROTECTION];
  #writeEpoch = 0;
  #writeSeq: number[] = [0];

  readonly #transmits = new OutputQueue<Uint8Array>();
  readonly #events = new OutputQueue<ConnectionEvent>();
  #lastReceive: number;
  #lastProgress: number;

  /** Counters of dropped records by reason. */
  readonly drops: Record<DropReason, number> = {
    malformed: 0,
    version: 0,
    epoch: 0,
    replay: 0,
    bad_mac: 0,
    unexpected: 0,
    unknown_type: 0,
    buffer_full: 0,
    resend_limited: 0,
  };

  /**
   * @internal Use the role factories. `memory` is the account its handshake
   * buffers are charged to (default: one of its own, limited to
   * `maxBufferedHandshakeBytes`).
   */
  constructor(config: ConnectionConfig, now: number, memory?: MemoryAccount) {
    this.config = config;
    this.createdAt = now;
    this.#now = now;
    this.#lastReceive = now;
    this.#lastProgress = now;
    this.#handshakeDeadline = now + config.handshakeTimeoutMs;
    this.#timer = new FlightTimer(config.retransmit, config.random);
    this.#memory = memory ?? new MemoryAccount(undefined, "", config.maxBufferedHandshakeBytes);
    this.inbound = new HandshakeReassembler({
      maxMessageLength: config.maxHandshakeMessageBytes,
      maxBufferedBytes: config.maxBufferedHandshakeBytes,
      account: this.#memory,
    });
  }

  /** @internal Binds the role driver; called once by the factories. */
  attach(driver: HandshakeDriver, firstWriteSeq = 0): void {
    this.#driver = driver;
    this.#writeSeq[0] = firstWriteSeq;
  }

  /** Bytes of handshake buffers held for the peer now (reassembly and early records). */
  get bufferedBytes(): number {
    return this.#memory.used;
  }

  /**
   * Notes an epoch-0 record handled before this connection existed (the
   * ClientHello the endpoint verified): a copy of it is not a repeat.
   */
  markUsed(seq: number): void {
    this.#epoch0Floor = Math.max(this.#epoch0Floor, seq);
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

  /** The time of the call being handled. */
  get now(): number {
    return this.#now;
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

  /** Handles one datagram from the peer. */
  handleDatagram(datagram: Uint8Array, now: number): void {
    this.#now = now;
    if (this.#phase === "closed") return;
    this.#datagramBytes = datagram.length;
    try {
      if (countMalformedRecords(datagram) > 0) this.#drop("malformed", -1);
      const cursor = CURSOR.reset(datagram);
      while (cursor.next()) {
        if (this.isClosed) return;
        this.#handleRecord(cursor);
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Handles one parsed record (the endpoint may have parsed the datagram already). */
  handleRecord(record: RecordView, now: number): void {
    this.#now = now;
    if (this.#phase === "closed") return;
    this.#datagramBytes = record.raw.length;
    try {
      this.#handleRecord(record);
    } catch (error) {
      this.#fail(error);
    }
  }

  #handleRecord(record: RecordView): void {
    if (this.#phase === "closed") return;
    const validVersion = record.version === DTLS_1_2 ||
      (record.version === DTLS_1_0 && record.epoch === 0);
    if (!validVersion) return this.#drop("version", record.epoch);

    const epoch = this.#reads[record.epoch];
    if (epoch === undefined) {
      // RFC 6347 §4.1: records of the next epoch may arrive before its
      // ChangeCipherSpec; keep a few, drop the rest.
      // Only epoch 1 can come early (no renegotiation: there is no epoch 2).
      if (
        record.epoch === 1 && this.#readEpoch === 0 && this.#phase === "handshaking" &&
        this.#early.length < MAX_EARLY_RECORDS &&
        this.#memory.charge(record.raw.length + BUFFER_OVERHEAD)
      ) {
        // Copied once (the record is a view of the datagram, and the cursor is
        // reused); the fragment is a view of the copy.
        const raw = record.raw.slice();
        this.#early.push({
          type: record.type,
          version: record.version,
          epoch: record.epoch,
          seq: record.seq,
          fragment: raw.subarray(RECORD_HEADER_LENGTH),
          raw,
        });
        return;
      }
      return this.#drop(record.epoch > this.#readEpoch ? "buffer_full" : "epoch", record.epoch);
    }
    // Epoch 0 has no replay window (RFC 6347 §4.1.2.6 makes one optional):
    // anyone can send epoch-0 records, so a window there could be pushed
    // past the peer's own, or filled with its next numbers, by noise.
    // Copies are harmless to the handshake; that they are not taken for
    // repeated flights is #isPeerRepeat's job.
    const replayChecked = record.epoch > 0;
    if (replayChecked && !epoch.replay.isFresh(record.seq)) {
      return this.#drop("replay", record.epoch);
    }
    const plaintext = epoch.protection.unprotect(
      record.type,
      record.version,
      record.epoch,
      record.seq,
      record.fragment,
    );
    if (plaintext === null) {
      this.#drop("bad_mac", record.epoch);
      // The first protected record of a handshake failing to authenticate means
      // the two sides derived different keys (a wrong PSK): fail cleanly now
      // rather than time out (RFC 5246 §7.2.2 bad_record_mac).
      // Only a handshake record (the Finished) counts: a stray alert or data
      // record of an old association on a reused port is noise.
      if (
        this.#phase === "handshaking" && record.epoch > 0 && record.type === ContentType.Handshake
      ) {
        this.#fail(
          new ProtocolError(AlertDescription.BadRecordMac, "Cannot authenticate Finished"),
        );
      }
      return;
    }
    if (replayChecked) epoch.replay.accept(record.seq);
    // Only a record of the epoch in use shows the peer is there: once keys
    // are, an epoch-0 record is anyone's and must not keep the connection.
    if (record.epoch === this.#readEpoch) this.#lastReceive = this.#now;
    if (record.epoch > 0) this.#lastProgress = this.#now;
    // Only while epoch 0 is read: later its records are stale and dropped.
    const handshake0 = record.epoch === 0 && this.#readEpoch === 0 &&
      record.type === ContentType.Handshake;
    this.#recordIsCopy = handshake0 &&
      (record.seq <= this.#epoch0Floor || this.#recent0?.has(record.seq) === true);
    if (handshake0 && !this.#recordIsCopy) {
      (this.#recent0 ??= new RecentSequences()).add(record.seq);
    }
    this.#dispatch(record, plaintext);
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
    return epoch > 0 || !this.#recordIsCopy;
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

  #dispatch(record: RecordView, plaintext: Uint8Array): void {
    const stale = record.epoch < this.#readEpoch;
    switch (record.type) {
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
          `Cannot handle record: unknown content type ${record.type}`,
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
        this.#phase === "established" && fragment.messageSeq >= this.inbound.nextSeq &&
          !(whole && fragment.messageSeq === this.inbound.nextSeq)
          ? "ignored"
          : this.inbound.add(fragment, epoch);
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
      for (let m = this.inbound.next(); m !== undefined; m = this.inbound.next()) {
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
          this.#nextPeerResend = now + this.config.retransmit.initialMs;
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
      this.#transmits.push(this.#seal(ContentType.ApplicationData, this.#writeEpoch, data));
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

  // ---- HandshakeHost ---------------------------------------------------------

  sendFlight(items: FlightItem[], armTimer: boolean): void {
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
  resendFlight(): void {
    const repeat = this.#peerRepeat;
    this.#peerRepeat = "unauthenticated";
    if (this.#timer.flight.length === 0) return;
    if (this.#now < this.#nextPeerResend) return this.#drop("resend_limited", -1);
    // Room is kept for the one alert the same datagram might still cause.
    const alertRoom = RECORD_HEADER_LENGTH + 2 + (this.#writes[this.#writeEpoch]?.overhead ?? 0);
    if (
      repeat === "unauthenticated" &&
      this.#flightBytes + alertRoom > UNAUTHENTICATED_RESEND_FACTOR * this.#datagramBytes
    ) {
      return this.#drop("resend_limited", -1);
    }
    this.#nextPeerResend = this.#now + this.config.retransmit.initialMs;
    // RFC 6347 §4.2.4: a retransmission goes back to WAITING, its timer
    // started again, so the timer does not send the flight again at once.
    this.#timer.restart(this.#now);
    this.#events.push({ type: "retransmit", cause: "peer_repeat" });
    this.#transmitFlight(this.#timer.flight);
  }

  disarmTimer(): void {
    this.#timer.disarm();
  }

  setPendingRead(protection: RecordProtection): void {
    this.#pendingRead = protection;
  }

  activatePendingRead(): void {
    if (this.#pendingRead === undefined) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        "Cannot change cipher spec: no keys yet",
      );
    }
    this.#readEpoch++;
    this.#lastProgress = this.#now;
    this.#reads[this.#readEpoch] = { protection: this.#pendingRead, replay: new ReplayWindow() };
    this.#pendingRead = undefined;
    // What older epochs left half-built cannot be the peer's now.
    this.inbound.dropEpochsBelow(this.#readEpoch);
    const early = this.#early;
    this.#early = [];
    for (const record of early) {
      this.#memory.release(record.raw.length + BUFFER_OVERHEAD);
      this.#handleRecord(record);
    }
  }

  setWrite(epoch: number, protection: RecordProtection): void {
    this.#writes[epoch] = protection;
    this.#writeSeq[epoch] ??= 0;
  }

  emit(event: HandshakeEvent): void {
    this.#events.push(event);
  }

  established(): void {
    this.#phase = "established";
    // Nothing is buffered once established (see #handleHandshake), so an
    // idle connection keeps no account.
    this.inbound.reset(NO_MEMORY);
    this.#dropEarly();
    this.#memory.releaseAll();
    this.#memory = NO_MEMORY;
    // Epoch-0 records are stale from now on: no copy of one is looked for.
    this.#recent0 = undefined;
  }

  // ---- internals -------------------------------------------------------------

  #drop(reason: DropReason, epoch: number): void {
    this.drops[reason]++;
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
    const { alert, internal } = alertFor(error);
    this.#trySendAlert(AlertLevel.Fatal, alert);
    const message = errorText(error);
    this.#close(
      internal ? `internal error: ${message}` : message,
      true,
      internal ? "internal" : "protocol_error",
      { direction: "sent", description: alertName(alert) },
      internal ? "engine" : undefined,
    );
  }

  /** Gives up the records held for an epoch not yet read. */
  #dropEarly(): void {
    for (const record of this.#early) this.#memory.release(record.raw.length + BUFFER_OVERHEAD);
    this.#early = [];
  }

  #close(
    reason: string,
    error: boolean,
    cause: CloseCause,
    alert?: ClosingAlert,
    internal?: InternalOrigin,
  ): void {
    this.#phase = "closed";
    this.#timer.clear();
    this.#dropEarly();
    this.inbound.clear();
    this.#memory.releaseAll();
    this.#events.push({ type: "closed", reason, error, cause, alert, internal });
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
    this.#transmits.push(
      this.#seal(ContentType.Alert, this.#writeEpoch, encodeAlert(level, description)),
    );
  }

  /**
   * @internal Seals `plaintext` as one record of `type` in the current write
   * epoch and queues it, bypassing the handshake logic. For tests that play a
   * misbehaving peer.
   */
  injectRecord(type: number, plaintext: Uint8Array): void {
    this.#transmits.push(this.#seal(type, this.#writeEpoch, plaintext));
  }

  /** Sends a warning alert without closing (e.g. no_renegotiation). */
  sendWarning(description: number): void {
    this.#sendAlert(AlertLevel.Warning, description);
  }

  #seal(type: number, epoch: number, plaintext: Uint8Array): Uint8Array {
    const protection = this.#writes[epoch];
    if (protection === undefined) throw new Error(`no write keys for epoch ${epoch}`);
    const seq = this.#writeSeq[epoch]!;
    if (!(seq <= MAX_WRITE_SEQ)) throw new SequenceExhausted(epoch);
    this.#writeSeq[epoch] = seq + 1;
    return protection.protectRecord(type, DTLS_1_2, epoch, seq, plaintext);
  }

  #transmitFlight(items: readonly FlightItem[]): void {
    this.#flightBytes = 0;
    const records: Uint8Array[] = [];
    for (const item of items) {
      if (item.kind === "change_cipher_spec") {
        records.push(this.#seal(ContentType.ChangeCipherSpec, item.epoch, CCS_BODY));
        // Everything we write after our ChangeCipherSpec uses the new epoch.
        this.#writeEpoch = Math.max(this.#writeEpoch, item.epoch + 1);
        continue;
      }
      const overhead = this.#writes[item.epoch]?.overhead ?? 0;
      const room = this.config.mtu - RECORD_HEADER_LENGTH - HANDSHAKE_HEADER_LENGTH - overhead;
      if (room < 1) throw new Error(`MTU ${this.config.mtu} too small`);
      for (
        const fragment of fragmentHandshakeMessage(item.msgType, item.messageSeq, item.body, room)
      ) {
        records.push(this.#seal(ContentType.Handshake, item.epoch, fragment));
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
      if (size + record.length > this.config.mtu) flush();
      batch.push(record);
      size += record.length;
    }
    flush();
  }
}

const CCS_BODY = new Uint8Array([1]);

const INTERNAL_ERROR_SENT: ClosingAlert = { direction: "sent", description: "internal_error" };

/** The account of a connection that holds no handshake buffers: it can hold nothing. */
const NO_MEMORY = new MemoryAccount(undefined, "", 0);

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

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
