/**
 * One DTLS 1.3 association, sans-I/O, with the same surface as the 1.2
 * `Connection` (`association.ts`): bytes and `now` in; datagrams, events
 * and the next timeout out.
 *
 * It owns what RFC 9147 changes below the handshake, which a role's driver
 * runs through a host object (`src/handshake/driver13.ts`; the server's in
 * `server13.ts`, the client's in `client13.ts`):
 *
 * - records: epoch 0 in the DTLSPlaintext header, every later epoch in the
 *   unified header with its record number encrypted
 *   (`src/record/protection13.ts`); a replay window and a count of forgeries
 *   per epoch, the epoch rebuilt from its two low bits among the epochs we
 *   read;
 * - reliability (§7): each handshake message cut into pieces once, each
 *   piece sent in a record of its own, an ACK marking pieces received, and
 *   a retransmission resending only the pieces not acknowledged; our ACKs
 *   for the client's Finished and its KeyUpdates;
 * - KeyUpdate (§8) both ways: a KeyUpdate received moves reading to the
 *   next epoch (and asks for ours when the peer requests it); ours is sent
 *   before a key reaches its record limit and writing moves on only once
 *   it is acknowledged.
 *
 * @module
 */

import { Reader } from "../codec/reader.ts";
import type { ConnectionConfig, HandshakeEvent } from "../handshake/driver.ts";
import { errorText, failureOf, ProtocolError } from "../handshake/errors.ts";
import { FlightTimer } from "../handshake/flight.ts";
import {
  HANDSHAKE_HEADER_LENGTH,
  type HandshakeFragment,
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
  ConnectionIdUsage,
  decodeAck,
  decodeKeyUpdate,
  decodeNewConnectionId,
  decodeRequestConnectionId,
  encodeAck,
  encodeKeyUpdate,
  encodeNewConnectionId,
  encodeRequestConnectionId,
  HandshakeType13,
  KeyUpdateRequest,
  type NewConnectionId,
  type RecordNumber,
} from "../handshake/messages13.ts";
import type {
  Handshake13Driver,
  Handshake13Host,
  OutgoingMessage13,
} from "../handshake/driver13.ts";
import { nextTrafficSecret, trafficKeys } from "../handshake/tls13_keys.ts";
import { MemoryAccount, NO_ACCOUNT } from "../memory/budget.ts";
import { ContentType, MAX_PLAINTEXT_LENGTH } from "../record/header.ts";
import { RecentSequences, ReplayWindow } from "../record/half_conn.ts";
import { Dtls13Protection } from "../record/protection13.ts";
import { type CipherSuite13, recordLimits } from "../record/suites13.ts";
import {
  isUnifiedHeader,
  parseUnifiedRecord,
  type UnifiedRecord,
} from "../record/unified_header.ts";
import { OutputQueue } from "./connection.ts";
import type { Association } from "./association.ts";
import { MAX_CID_LENGTH } from "../handshake/extensions.ts";
import type {
  CloseCause,
  ClosingAlert,
  ConnectionEvent,
  DropReason,
  InternalOrigin,
} from "./events.ts";

/** The ACK record's content type (RFC 9147 §7). */
export const CONTENT_TYPE_ACK = 26;

/** Bytes of a DTLSPlaintext header: type, version, epoch, sequence number, length. */
const PLAINTEXT_HEADER_LENGTH = 13;
/** Bytes of the unified headers we write: first byte, 16-bit sequence number, length. */
const UNIFIED_HEADER_LENGTH = 5;
/** How many times the bytes of an unauthenticated datagram a resend it asks for may be. */
const UNAUTHENTICATED_RESEND_FACTOR = 3;
/** The most record numbers one ACK of ours carries, and the most we hold to acknowledge. */
const MAX_PENDING_ACKS = 32;
/** The most spare Connection IDs one connection gives out. */
const MAX_ISSUED_CIDS = 4;
/** No Connection ID. */
const NO_CID = new Uint8Array(0);
/** The header of the records we write without a CID: 16-bit sequence number, length. */
const PLAIN_SHAPE = { seqLength: 2, withLength: true } as const;
/** The largest epoch: epochs are uint64 on the wire, but ours stay far below 2^48. */
const MAX_EPOCH = 2 ** 48 - 1;
/** The largest record sequence number (RFC 9147 §4.2.1: a key is spent before 2^48 records). */
const MAX_SEQ = 2 ** 48 - 1;

/** How a DTLS 1.3 connection starts: its role's driver and what the endpoint already did. */
export interface Connection13Setup {
  /** Makes the role's handshake driver, given the host it talks to. */
  readonly driver: (host: Handshake13Host) => Handshake13Driver;
  /**
   * The record sequence number of the ClientHello the server answers: our
   * epoch-0 records continue from it (none: a client, from 0).
   */
  readonly helloSeq?: number;
  /** The message_seq of that ClientHello: the ServerHello's (none: a client, from 0). */
  readonly helloMessageSeq?: number;
  /** The account handshake buffers are charged to. */
  readonly memory?: MemoryAccount;
  /**
   * The Connection IDs agreed (RFC 9147 §9), a server's from the start:
   * `ours` in the records we receive, `theirs` (maybe empty: none) in those we send.
   */
  readonly connectionIds?: { readonly ours: Uint8Array; readonly theirs: Uint8Array };
  /**
   * A fresh Connection ID of ours that the endpoint will route to this
   * connection too (for a NewConnectionId); undefined when none can be made.
   */
  readonly issueConnectionId?: () => Uint8Array | undefined;
}

/** One direction's keys of one epoch. */
interface Epoch13 {
  readonly epoch: number;
  readonly protection: Dtls13Protection;
  /** The traffic secret (application epochs: KeyUpdate derives the next from it). */
  readonly secret: Uint8Array;
}

interface ReadEpoch extends Epoch13 {
  readonly window: ReplayWindow;
  /** Records that failed to authenticate under these keys (RFC 9147 §4.5.3). */
  failures: number;
}

interface WriteEpoch extends Epoch13 {
  nextSeq: number;
}

/** A piece of a handshake message, sent in a record of its own until acknowledged. */
interface Piece {
  readonly offset: number;
  readonly length: number;
  acked: boolean;
  /** The record numbers it went out in. */
  readonly sentIn: RecordNumber[];
}

/** A handshake message of ours being delivered. */
interface OutMessage {
  readonly epoch: number;
  readonly msgType: number;
  readonly messageSeq: number;
  readonly body: Uint8Array;
  readonly pieces: Piece[];
}

type Phase = "handshaking" | "established" | "closed";

/** One DTLS 1.3 association, server side. */
export class Connection13 implements Association {
  readonly createdAt: number;
  readonly #config: ConnectionConfig;
  readonly #setup: Connection13Setup;
  readonly #driver: Handshake13Driver;
  /** The suite, once the hellos chose it. */
  #suite: CipherSuite13 | undefined = undefined;
  #limits = { confidentiality: 0, integrity: 0 };
  #keyUpdateAfter = 0;
  #phase: Phase = "handshaking";
  #now: number;
  readonly #handshakeDeadline: number;
  #memory: MemoryAccount;
  readonly #inbound: HandshakeReassembler;
  /** The epochs we read, oldest first: at most the handshake's and two application epochs. */
  #read: ReadEpoch[] = [];
  /** The epoch-0 record numbers of the peer's we saw: copies the network made are not repeats. */
  readonly #plainSeen = new RecentSequences();
  /** The server's: the ClientHello's record number, below which epoch-0 records are old copies. */
  readonly #helloSeq: number;
  /** Our next epoch-0 sequence number (a server's continue from the ClientHello's). */
  #plainNextSeq: number;
  /** The epochs we write: the handshake's (2) and the application's current one. */
  #write: WriteEpoch[] = [];
  /** Our next handshake message_seq. */
  #nextMessageSeq: number;
  /** The messages of ours awaiting acknowledgement: a handshake flight, or a KeyUpdate. */
  #outgoing: OutMessage[] = [];
  readonly #timer: FlightTimer;
  /** Record numbers of the peer's we owe an ACK for. */
  #pendingAcks: RecordNumber[] = [];
  /** When the ACK owed is sent (now, or after a delay for a flight coming in order). */
  #ackDue: number | undefined = undefined;
  /** Our KeyUpdate in flight: writing moves to the next epoch once it is acknowledged. */
  #keyUpdateSent = false;
  /**
   * A KeyUpdate due while another message of ours was in flight (one at a
   * time): sent once that one is acknowledged; true when it asks for the
   * peer's. Undefined: none owed.
   */
  #keyUpdateOwed: boolean | undefined = undefined;
  /** Whether we asked the peer for a KeyUpdate (its key saw many forgeries) and have not had it. */
  #keyUpdateRequested = false;
  #datagramBytes = 0;
  #nextPeerResend = -Infinity;
  #lastReceive: number;
  #lastProgress: number;
  /** Whether any record of the peer's authenticated under epoch 2 or later keys. */
  #heardProtected = false;
  /** The record being handled: its epoch and sequence number. */
  #recordEpoch = 0;
  #recordSeq = 0;
  #newest = false;
  /** The Connection ID in the records we receive (RFC 9147 §9), once agreed. */
  #cidOurs: Uint8Array | undefined = undefined;
  /** The Connection ID we put in the records we send; empty: none. */
  #cidTheirs: Uint8Array = NO_CID;
  /** Spare Connection IDs of ours given out with NewConnectionId. */
  #cidsIssued = 0;
  /** Whether the datagram being handled came from another address than the peer's (routed by CID). */
  #elsewhere = false;
  readonly #transmits = new OutputQueue<Uint8Array>();
  readonly #events = new OutputQueue<ConnectionEvent>();

  constructor(config: ConnectionConfig, now: number, setup: Connection13Setup) {
    this.#config = config;
    this.#setup = setup;
    this.createdAt = now;
    this.#now = now;
    this.#lastReceive = now;
    this.#lastProgress = now;
    this.#handshakeDeadline = now + config.handshakeTimeoutMs;
    this.#memory = setup.memory ??
      new MemoryAccount(undefined, "", config.maxReassemblyPerHandshake);
    this.#inbound = new HandshakeReassembler({
      maxMessageLength: config.maxHandshakeMessage,
      maxBufferedBytes: config.maxReassemblyPerHandshake,
      account: this.#memory,
    });
    const helloMessageSeq = setup.helloMessageSeq;
    this.#inbound.nextSeq = helloMessageSeq === undefined ? 0 : helloMessageSeq + 1;
    this.#nextMessageSeq = helloMessageSeq ?? 0;
    this.#helloSeq = setup.helloSeq ?? -1;
    this.#plainNextSeq = setup.helloSeq ?? 0;
    if (setup.helloSeq !== undefined) this.#plainSeen.add(setup.helloSeq);
    this.#timer = new FlightTimer(config.retransmit, config.random);
    if (setup.connectionIds !== undefined) {
      this.#cidOurs = setup.connectionIds.ours;
      this.#cidTheirs = setup.connectionIds.theirs;
    }
    this.#driver = setup.driver(new Connection13.#Host(this));
  }

  /**
   * What the driver may do to its connection: an object of its own, so that
   * none of it is the connection's public API.
   */
  static readonly #Host = class Connection13Host implements Handshake13Host {
    readonly #c: Connection13;
    constructor(connection: Connection13) {
      this.#c = connection;
    }
    get config(): ConnectionConfig {
      return this.#c.#config;
    }
    get now(): number {
      return this.#c.#now;
    }
    useSuite(suite: CipherSuite13): void {
      this.#c.#useSuite(suite);
    }
    sendFlight(messages: readonly OutgoingMessage13[]): void {
      const c = this.#c;
      c.#forgetAcks();
      c.#sendMessages(
        messages.map((m) => c.#message(m.epoch, m.msgType, c.#nextMessageSeq++, m.body)),
      );
    }
    sendMessage(msgType: number, body: Uint8Array): void {
      const c = this.#c;
      c.#sendMessages([c.#message(c.#currentWrite().epoch, msgType, c.#nextMessageSeq++, body)]);
    }
    flightAnswered(): void {
      this.#c.#outgoing = [];
      this.#c.#timer.clear();
    }
    installRead(epoch: number, secret: Uint8Array): void {
      this.#c.#read.push(this.#c.#readEpoch(epoch, secret));
    }
    installWrite(epoch: number, secret: Uint8Array): void {
      this.#c.#write.push(this.#c.#writeEpoch(epoch, secret));
    }
    emit(event: HandshakeEvent): void {
      this.#c.#events.push(event);
    }
    acknowledge(): void {
      this.#c.#acknowledge();
    }
    useConnectionIds(ours: Uint8Array | undefined, theirs: Uint8Array): void {
      this.#c.#cidOurs = ours;
      this.#c.#cidTheirs = theirs;
    }
    established(): void {
      this.#c.#established();
    }
  };

  #useSuite(suite: CipherSuite13): void {
    this.#suite = suite;
    this.#limits = recordLimits(suite);
    this.#keyUpdateAfter = Math.min(
      Math.max(
        1,
        this.#config.keyUpdateAfterRecords ?? Math.floor(this.#limits.confidentiality / 2),
      ),
      this.#limits.confidentiality - 1,
    );
  }

  // ---- the Association surface ------------------------------------------------

  /** The Connection ID the peer's records carry (RFC 9147 §9), once agreed. */
  get connectionId(): Uint8Array | undefined {
    return this.#cidOurs;
  }

  get bufferedBytes(): number {
    return this.#memory.used;
  }

  get isEstablished(): boolean {
    return this.#phase === "established";
  }

  get isClosed(): boolean {
    return this.#phase === "closed";
  }

  get lastProgress(): number {
    return this.#lastProgress;
  }

  get lastReceive(): number {
    return this.#lastReceive;
  }

  get holdsIdleMemory(): boolean {
    return false;
  }

  releaseIdleMemory(): void {}

  stopRetransmitting(): void {
    this.#timer.disarm();
  }

  start(): void {
    try {
      this.#driver.start();
      this.#flushAcks();
    } catch (error) {
      this.#fail(error);
    }
  }

  deliverPskLookup(result: Uint8Array | undefined | Error, now: number): void {
    this.#now = now;
    if (this.#phase === "closed") return;
    try {
      this.#driver.onPskLookup?.(result);
    } catch (error) {
      this.#fail(error);
    }
  }

  handleDatagram(datagram: Uint8Array, now: number, elsewhere = false): boolean {
    this.#now = now;
    this.#newest = false;
    this.#elsewhere = elsewhere;
    if (this.#phase === "closed") return false;
    // From another address, only an established connection's own records count.
    if (elsewhere && this.#phase !== "established") {
      this.#drop("unexpected", -1);
      return false;
    }
    this.#datagramBytes = datagram.length;
    try {
      let at = 0;
      while (at < datagram.length && !this.isClosed) {
        const first = datagram[at]!;
        if (isUnifiedHeader(first)) {
          const parsed = parseUnifiedRecord(datagram, at, this.#cidOurs?.length ?? 0);
          if (parsed === undefined) {
            this.#drop("malformed", -1);
            break;
          }
          this.#handleProtected(parsed.record);
          at = parsed.end;
        } else {
          if (elsewhere) {
            this.#drop("unexpected", 0);
            break;
          }
          const end = this.#handlePlaintext(datagram, at);
          if (end === undefined) break;
          at = end;
        }
      }
      this.#flushAcks();
    } catch (error) {
      this.#fail(error);
    }
    return this.#newest && !this.isClosed;
  }

  // ---- records in -------------------------------------------------------------

  /** An epoch-0 record at `at`: the end of it, or undefined when the rest is not a record. */
  #handlePlaintext(datagram: Uint8Array, at: number): number | undefined {
    if (datagram.length - at < PLAINTEXT_HEADER_LENGTH) {
      this.#drop("malformed", -1);
      return undefined;
    }
    const type = datagram[at]!;
    const epochHigh = (datagram[at + 3]! << 8) | datagram[at + 4]!;
    const length = (datagram[at + 11]! << 8) | datagram[at + 12]!;
    const end = at + PLAINTEXT_HEADER_LENGTH + length;
    if (end > datagram.length || datagram[at + 1] !== 0xfe) {
      this.#drop("malformed", -1);
      return undefined;
    }
    const seq = new Reader(datagram, at + 5, at + 11).u48("seq");
    const body = datagram.subarray(at + PLAINTEXT_HEADER_LENGTH, end);
    this.#recordEpoch = 0;
    this.#recordSeq = seq;
    if (epochHigh !== 0) {
      this.#drop("epoch", epochHigh);
      return end;
    }
    switch (type) {
      case ContentType.Handshake: {
        // A copy the network made of a record we saw is not the peer repeating it.
        const copy = seq <= this.#helloSeq || this.#plainSeen.has(seq);
        this.#plainSeen.add(seq);
        let fragments;
        try {
          fragments = parseHandshakeFragments(body);
        } catch {
          this.#drop("malformed", 0);
          return end;
        }
        for (const f of fragments) {
          if (this.isClosed) break;
          if (f.messageSeq >= this.#inbound.nextSeq) {
            // Only a client reads new messages in the clear (the hellos); a
            // server's ClientHello came through the endpoint.
            if (!this.#driver.readsPlaintext) {
              this.#drop("unexpected", 0);
              continue;
            }
            this.#handleFragment(f, 0);
            continue;
          }
          if (copy || f.fragmentOffset !== 0) {
            this.#drop("replay", 0);
            continue;
          }
          this.#peerRepeated(false);
        }
        return end;
      }
      case ContentType.Alert:
        // Before any protected record the client may refuse our ServerHello
        // in the clear; after, an unprotected alert is anyone's.
        if (this.#heardProtected) {
          this.#drop("unexpected", 0);
          return end;
        }
        this.#handleAlert(body);
        return end;
      default:
        this.#drop("unexpected", 0);
        return end;
    }
  }

  /** The epoch we read whose two low bits are `bits`: the newest such. */
  #readEpochFor(bits: number): ReadEpoch | undefined {
    for (let i = this.#read.length - 1; i >= 0; i--) {
      if ((this.#read[i]!.epoch & 3) === bits) return this.#read[i];
    }
    return undefined;
  }

  #handleProtected(record: UnifiedRecord): void {
    const epoch = this.#readEpochFor(record.epochBits);
    if (epoch === undefined) return this.#drop("epoch", record.epochBits);
    // Anyone can send from elsewhere with our CID (it is not secret): only a
    // record of the epoch in use that carries it is read, and one that
    // fails is noise there, counted against no key.
    const newestEpoch = epoch === this.#read[this.#read.length - 1];
    if (this.#elsewhere && (record.cid.length === 0 || !newestEpoch)) {
      return this.#drop("unexpected", epoch.epoch);
    }
    const opened = epoch.protection.open(record, epoch.window.highest + 1);
    if (opened === null) {
      this.#drop("bad_mac", epoch.epoch);
      if (this.#elsewhere) return;
      epoch.failures++;
      return this.#checkIntegrityLimit(epoch);
    }
    if (!epoch.window.isFresh(opened.seq)) return this.#drop("replay", epoch.epoch);
    epoch.window.accept(opened.seq);
    this.#heardProtected = true;
    this.#lastReceive = this.#now;
    this.#lastProgress = this.#now;
    if (epoch === this.#read[this.#read.length - 1] && opened.seq === epoch.window.highest) {
      this.#newest = true;
    }
    this.#recordEpoch = epoch.epoch;
    this.#recordSeq = opened.seq;
    switch (opened.type) {
      case ContentType.Handshake:
        return this.#handleHandshake(epoch.epoch, opened.content);
      case ContentType.Alert:
        return this.#handleAlert(opened.content);
      case ContentType.ApplicationData:
        if (this.#phase !== "established" || epoch.epoch < 3) {
          return this.#drop("unexpected", epoch.epoch);
        }
        this.#events.push({
          type: "data",
          data: opened.content.slice(),
          record: wholeRecord(record),
        });
        return;
      case CONTENT_TYPE_ACK:
        return this.#handleAck(opened.content);
      default:
        throw new ProtocolError(
          AlertDescription.UnexpectedMessage,
          `Cannot handle record: content type ${opened.type}`,
        );
    }
  }

  /**
   * Past half its integrity limit a key of the peer's is asked to be
   * replaced; at the limit the connection ends (RFC 9147 §4.5.3).
   */
  #checkIntegrityLimit(epoch: ReadEpoch): void {
    const newest = epoch === this.#read[this.#read.length - 1];
    if (epoch.failures >= this.#limits.integrity && !newest) {
      // A key we no longer need is let go rather than tried again.
      this.#read = this.#read.filter((e) => e !== epoch);
      return;
    }
    if (epoch.failures >= this.#limits.integrity) {
      return this.#close(
        "too many records failed to authenticate (AEAD integrity limit)",
        true,
        "protocol_error",
      );
    }
    if (
      epoch.failures >= this.#limits.integrity / 2 && this.#phase === "established" &&
      newest && !this.#keyUpdateRequested
    ) {
      this.#keyUpdateRequested = true;
      this.#sendKeyUpdate(true);
    }
  }

  #handleHandshake(epoch: number, plaintext: Uint8Array): void {
    const fragments = parseHandshakeFragments(plaintext);
    for (const fragment of fragments) {
      if (this.isClosed) return;
      this.#handleFragment(fragment, epoch);
    }
  }

  #handleFragment(fragment: HandshakeFragment, epoch: number): void {
    switch (this.#inbound.add(fragment, epoch)) {
      case "buffered":
        // Part of a flight came, in order: which records did is said if the
        // rest is slow to come (RFC 9147 §7.1), after a quarter of the
        // retransmission timeout; a client's ACK names the ServerHello's
        // epoch-0 records too.
        this.#acknowledge(false);
        break;
      case "future":
        // A gap: the peer hears at once what came, and resends only the rest.
        this.#acknowledge(true);
        break;
      case "old":
        // A message we have: the peer lost our answer to it. While a flight
        // of ours is out, that flight is the answer; else our ACK was.
        if (fragment.fragmentOffset !== 0) break;
        if (this.#outgoing.length > 0 && !this.#keyUpdateSent) this.#peerRepeated(epoch > 0);
        else if (epoch > 0) this.#acknowledge();
        break;
      case "stale":
        this.#drop("unexpected", epoch);
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
        this.#drop("buffer_full", epoch);
        break;
    }
    for (let m = this.#inbound.next(); m !== undefined; m = this.#inbound.next()) {
      if (this.isClosed) return;
      this.#lastProgress = this.#now;
      this.#onMessage(m.msgType, m.body, m.epoch);
    }
  }

  #onMessage(msgType: number, body: Uint8Array, epoch: number): void {
    if (this.#phase === "handshaking") return this.#driver.onMessage(msgType, body, epoch);
    if (epoch < 3) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        `Handshake message ${msgType} of the handshake's epoch after it`,
      );
    }
    if (msgType === HandshakeType13.RequestConnectionId) {
      this.#acknowledge();
      return this.#answerConnectionIdRequest(decodeRequestConnectionId(body));
    }
    if (msgType === HandshakeType13.NewConnectionId) {
      this.#acknowledge();
      return this.#takeNewConnectionIds(decodeNewConnectionId(body));
    }
    if (msgType !== HandshakeType13.KeyUpdate) {
      // A post-handshake message the driver takes (a client: NewSessionTicket) is acknowledged.
      this.#driver.onMessage(msgType, body, epoch);
      return this.#acknowledge();
    }
    const request = decodeKeyUpdate(body);
    if (request !== KeyUpdateRequest.NotRequested && request !== KeyUpdateRequest.Requested) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "KeyUpdate with a bad request_update",
      );
    }
    const current = this.#read[this.#read.length - 1]!;
    if (epoch !== current.epoch) {
      // A KeyUpdate of an epoch we already moved past: acknowledged, not applied twice.
      return this.#acknowledge();
    }
    if (current.epoch >= MAX_EPOCH) {
      throw new ProtocolError(AlertDescription.UnexpectedMessage, "Epochs used up");
    }
    this.#acknowledge();
    const next = nextTrafficSecret(this.#config.provider, this.#suite!.hash, current.secret);
    this.#read.push(this.#readEpoch(current.epoch + 1, next));
    // Records of the older epoch may still come, reordered; one before it is gone.
    while (this.#read.length > 2) this.#read.shift();
    this.#keyUpdateRequested = false;
    this.#events.push({ type: "key_update", direction: "received", epoch: current.epoch + 1 });
    if (request === KeyUpdateRequest.Requested && !this.#keyUpdateSent) this.#sendKeyUpdate(false);
  }

  /**
   * The peer asks for Connection IDs to use (RFC 9147 §9): up to
   * {@link MAX_ISSUED_CIDS} over the connection's life, as spares, when a
   * CID is in use at all; none while a message of ours is still in flight.
   */
  #answerConnectionIdRequest(count: number): void {
    const issue = this.#setup.issueConnectionId;
    if (this.#cidOurs === undefined || issue === undefined || this.#outgoing.length > 0) return;
    const cids: Uint8Array[] = [];
    while (cids.length < count && this.#cidsIssued < MAX_ISSUED_CIDS) {
      const cid = issue();
      if (cid === undefined) break;
      this.#cidsIssued++;
      cids.push(cid);
    }
    if (cids.length === 0) return;
    this.#sendMessages([
      this.#message(
        this.#currentWrite().epoch,
        HandshakeType13.NewConnectionId,
        this.#nextMessageSeq++,
        encodeNewConnectionId({ cids, usage: ConnectionIdUsage.Spare }),
      ),
    ]);
  }

  /** CIDs the peer gives us: an immediate one is used from now on; spares are not kept. */
  #takeNewConnectionIds(m: NewConnectionId): void {
    if (this.#cidTheirs.length === 0) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        "NewConnectionId without a Connection ID agreed",
      );
    }
    if (m.cids.some((cid) => cid.length > MAX_CID_LENGTH)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        `NewConnectionId with a CID over ${MAX_CID_LENGTH} bytes`,
      );
    }
    const first = m.cids[0];
    if (m.usage === ConnectionIdUsage.Immediate && first !== undefined) {
      this.#cidTheirs = first.slice();
    }
  }

  #established(): void {
    this.#phase = "established";
    this.#inbound.reset(NO_ACCOUNT);
    this.#memory.releaseAll();
    this.#memory = NO_ACCOUNT;
  }

  #handleAck(body: Uint8Array): void {
    let records: RecordNumber[];
    try {
      records = decodeAck(body);
    } catch {
      throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode ACK");
    }
    if (this.#outgoing.length === 0) return;
    for (const r of records) {
      for (const m of this.#outgoing) {
        for (const p of m.pieces) {
          if (!p.acked && p.sentIn.some((s) => s.epoch === r.epoch && s.seq === r.seq)) {
            p.acked = true;
          }
        }
      }
    }
    if (this.#outgoing.every((m) => m.pieces.every((p) => p.acked))) this.#delivered();
  }

  /** Every piece of what we had in flight was acknowledged. */
  #delivered(): void {
    this.#outgoing = [];
    this.#timer.clear();
    if (this.#keyUpdateSent) {
      this.#keyUpdateSent = false;
      const current = this.#write[this.#write.length - 1]!;
      const next = nextTrafficSecret(this.#config.provider, this.#suite!.hash, current.secret);
      this.#write = [this.#writeEpoch(current.epoch + 1, next)];
      this.#events.push({ type: "key_update", direction: "sent", epoch: current.epoch + 1 });
    }
    const owed = this.#keyUpdateOwed;
    if (owed !== undefined) {
      this.#keyUpdateOwed = undefined;
      this.#sendKeyUpdate(owed);
    }
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
      this.#trySendAlert(AlertLevel.Warning, AlertDescription.CloseNotify);
      return this.#close("close_notify received", false, "peer_closed");
    }
    // RFC 8446 §6: every alert but close_notify and user_canceled ends the connection.
    if (fatal || alert.description !== AlertDescription.UserCanceled) {
      return this.#close(`fatal alert received: ${description}`, true, "peer_alert", {
        direction: "received",
        description,
      });
    }
  }

  // ---- acknowledgements -----------------------------------------------------------

  /**
   * Owes the peer an ACK for the record being handled: sent once the
   * datagram is read when `now`, else when the ACK timer fires (unless a
   * flight of ours, which acknowledges the peer's, goes first).
   */
  #acknowledge(now = true): void {
    const pending = this.#pendingAcks;
    const epoch = this.#recordEpoch;
    const seq = this.#recordSeq;
    if (now) this.#ackDue = this.#now;
    else this.#ackDue ??= this.#now + Math.ceil(this.#config.retransmit.initialMs / 4);
    if (pending.some((r) => r.epoch === epoch && r.seq === seq)) return;
    if (pending.length >= MAX_PENDING_ACKS) pending.shift();
    pending.push({ epoch, seq });
  }

  /** Sends the ACK owed, if it is due. */
  #flushAcks(): void {
    // RFC 9147 §7: an ACK goes in the newest epoch we write (the client's
    // Finished is acknowledged in epoch 3); what came before we have keys
    // waits for them.
    const due = this.#ackDue;
    if (due === undefined || due > this.#now || this.isClosed || this.#write.length === 0) return;
    const acks = this.#pendingAcks;
    this.#pendingAcks = [];
    this.#ackDue = undefined;
    if (acks.length === 0) return;
    this.#transmits.push(this.#seal(this.#currentWrite(), CONTENT_TYPE_ACK, encodeAck(acks)));
  }

  /** Our flight answers the peer's: no ACK of it is owed any more. */
  #forgetAcks(): void {
    this.#pendingAcks = [];
    this.#ackDue = undefined;
  }

  // ---- timers ---------------------------------------------------------------------

  pollTimeout(): number | undefined {
    if (this.#phase === "closed") return undefined;
    let due = this.#timer.deadline ?? Infinity;
    if (this.#ackDue !== undefined && this.#write.length > 0) due = Math.min(due, this.#ackDue);
    if (this.#phase === "handshaking") due = Math.min(due, this.#handshakeDeadline);
    return due === Infinity ? undefined : due;
  }

  handleTimeout(now: number): void {
    this.#now = now;
    if (this.#phase === "closed") return;
    try {
      if (this.#phase === "handshaking" && now >= this.#handshakeDeadline) {
        return this.#close("handshake timeout", true, "handshake_timeout");
      }
      this.#flushAcks();
      switch (this.#timer.poll(now)) {
        case "resend":
          this.#nextPeerResend = now + this.#config.retransmit.initialMs;
          this.#events.push({ type: "retransmit", cause: "timeout" });
          this.#transmitOutgoing();
          return;
        case "give_up":
          if (this.#phase === "handshaking") {
            return this.#close("handshake timeout", true, "handshake_timeout");
          }
          // A KeyUpdate never acknowledged: the peer is gone or broken, and
          // our keys cannot move on. Anything else (a NewSessionTicket, a
          // NewConnectionId) is given up on; the connection carries on.
          if (this.#keyUpdateSent) {
            return this.#close("KeyUpdate never acknowledged", true, "protocol_error");
          }
          this.#outgoing = [];
          this.#timer.clear();
          this.#events.push({ type: "dropped", reason: "unacknowledged", epoch: -1 });
          if (this.#keyUpdateOwed !== undefined) {
            const owed = this.#keyUpdateOwed;
            this.#keyUpdateOwed = undefined;
            this.#sendKeyUpdate(owed);
          }
          return;
        case "none":
          return;
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  // ---- application ------------------------------------------------------------------

  send(data: Uint8Array): void {
    if (this.#phase !== "established") {
      throw new TypeError(`Cannot send application data: connection is ${this.#phase}`);
    }
    if (data.length > MAX_PLAINTEXT_LENGTH) {
      throw new RangeError("Cannot send application data: over 2^14 bytes");
    }
    try {
      const write = this.#currentWrite();
      this.#transmits.push(this.#seal(write, ContentType.ApplicationData, data));
      if (write.nextSeq >= this.#keyUpdateAfter && !this.#keyUpdateSent) this.#sendKeyUpdate(false);
    } catch (error) {
      this.#fail(error);
    }
  }

  /**
   * Sends a KeyUpdate (RFC 9147 §8), asking the peer for one back when
   * `requestPeer`: our records move to the next epoch once it is
   * acknowledged. False when one is already on its way (or the handshake
   * is not over).
   */
  updateKeys(requestPeer = false): boolean {
    if (this.#phase !== "established" || this.#keyUpdateSent || this.#outgoing.length > 0) {
      return false;
    }
    try {
      this.#sendKeyUpdate(requestPeer);
    } catch (error) {
      this.#fail(error);
    }
    return true;
  }

  /**
   * Asks the peer for `count` more Connection IDs (RequestConnectionId, RFC
   * 9147 §9). False unless a CID is in use and nothing of ours is in flight.
   */
  requestConnectionIds(count: number): boolean {
    if (
      this.#phase !== "established" || this.#cidTheirs.length === 0 || this.#outgoing.length > 0 ||
      !(Number.isInteger(count) && count >= 1 && count <= 255)
    ) {
      return false;
    }
    try {
      this.#sendMessages([
        this.#message(
          this.#currentWrite().epoch,
          HandshakeType13.RequestConnectionId,
          this.#nextMessageSeq++,
          encodeRequestConnectionId(count),
        ),
      ]);
    } catch (error) {
      this.#fail(error);
    }
    return true;
  }

  close(reason = "closed locally", cause: "local" | "idle_timeout" = "local"): void {
    if (this.#phase === "closed") return;
    this.#trySendAlert(AlertLevel.Warning, AlertDescription.CloseNotify);
    this.#close(reason, false, cause);
  }

  abort(reason: string, cause: "aborted" | "replaced" = "aborted"): void {
    if (this.#phase === "closed") return;
    this.#close(reason, true, cause);
  }

  failInternal(error: unknown, origin: InternalOrigin = "handler"): void {
    if (this.#phase === "closed") return;
    this.#trySendAlert(AlertLevel.Fatal, AlertDescription.InternalError);
    this.#close(`internal error: ${errorText(error)}`, true, "internal", {
      direction: "sent",
      description: "internal_error",
    }, origin);
  }

  /**
   * @internal Seals `content` as one record of `type` in the newest epoch we
   * write (in the clear before we have keys) and queues it, bypassing the
   * handshake logic. For tests that play a misbehaving peer.
   */
  injectRecord(type: number, content: Uint8Array): void {
    this.#transmits.push(
      this.#write.length === 0
        ? plaintextRecord(type, this.#plainNextSeq++, content)
        : this.#seal(this.#currentWrite(), type, content),
    );
  }

  pollTransmit(): Uint8Array | undefined {
    return this.#transmits.poll();
  }

  pollEvent(): ConnectionEvent | undefined {
    return this.#events.poll();
  }

  // ---- records out -------------------------------------------------------------------

  #readEpoch(epoch: number, secret: Uint8Array): ReadEpoch {
    return { ...this.#epochKeys(epoch, secret), window: new ReplayWindow(), failures: 0 };
  }

  #writeEpoch(epoch: number, secret: Uint8Array): WriteEpoch {
    return { ...this.#epochKeys(epoch, secret), nextSeq: 0 };
  }

  #epochKeys(epoch: number, secret: Uint8Array): Epoch13 {
    const { provider } = this.#config;
    const suite = this.#suite;
    if (suite === undefined) throw new Error("Cannot install keys before the suite is chosen");
    const keys = trafficKeys(provider, suite.hash, secret, suite.keyLength);
    return {
      epoch,
      secret,
      protection: new Dtls13Protection(
        provider,
        provider.aead(suite.aead, keys.key),
        keys,
        suite.snCipher,
      ),
    };
  }

  /** The application epoch we write in now. */
  #currentWrite(): WriteEpoch {
    return this.#write[this.#write.length - 1]!;
  }

  #seal(write: WriteEpoch, type: number, content: Uint8Array): Uint8Array {
    const seq = write.nextSeq;
    if (seq > MAX_SEQ || seq >= this.#limits.confidentiality) {
      throw new SequenceLimit();
    }
    write.nextSeq = seq + 1;
    const cid = this.#cidTheirs;
    return write.protection.seal(
      type,
      content,
      write.epoch,
      seq,
      cid.length === 0 ? PLAIN_SHAPE : { seqLength: 2, withLength: true, cid },
    );
  }

  #message(epoch: number, msgType: number, messageSeq: number, body: Uint8Array): OutMessage {
    const room = this.#room(epoch);
    const pieces: Piece[] = [];
    for (let offset = 0; offset < body.length || offset === 0; offset += room) {
      pieces.push({
        offset,
        length: Math.min(room, body.length - offset),
        acked: false,
        sentIn: [],
      });
      if (body.length === 0) break;
    }
    return { epoch, msgType, messageSeq, body, pieces };
  }

  /** Bytes of handshake message a record of `epoch` carries within the MTU. */
  /** Bytes a handshake fragment's record adds to it in `epoch`: headers, CID, content type, tag. */
  #fragmentOverhead(epoch: number): number {
    const record = epoch === 0
      ? PLAINTEXT_HEADER_LENGTH
      : UNIFIED_HEADER_LENGTH + this.#cidTheirs.length + 1 + this.#tagLength();
    return record + HANDSHAKE_HEADER_LENGTH;
  }

  #room(epoch: number): number {
    const room = this.#config.mtu - this.#fragmentOverhead(epoch);
    if (room < 1) throw new Error(`MTU ${this.#config.mtu} too small`);
    return room;
  }

  #tagLength(): number {
    return this.#suite?.aead === "aes-ccm-8" ? 8 : 16;
  }

  /** Sends messages and keeps them until acknowledged. */
  #sendMessages(messages: OutMessage[]): void {
    this.#outgoing = messages;
    this.#timer.start([], this.#now, true);
    this.#transmitOutgoing();
  }

  /** (Re)sends every piece not acknowledged, each in a new record. */
  #transmitOutgoing(): void {
    const records: Uint8Array[] = [];
    for (const m of this.#outgoing) {
      for (const p of m.pieces) {
        if (p.acked) continue;
        const fragment = new Uint8Array(HANDSHAKE_HEADER_LENGTH + p.length);
        fragment[0] = m.msgType;
        writeU24(fragment, 1, m.body.length);
        fragment[4] = m.messageSeq >>> 8;
        fragment[5] = m.messageSeq & 0xff;
        writeU24(fragment, 6, p.offset);
        writeU24(fragment, 9, p.length);
        fragment.set(m.body.subarray(p.offset, p.offset + p.length), HANDSHAKE_HEADER_LENGTH);
        if (m.epoch === 0) {
          const seq = this.#plainNextSeq++;
          records.push(plaintextRecord(ContentType.Handshake, seq, fragment));
          p.sentIn.push({ epoch: 0, seq });
        } else {
          const write = this.#write.find((w) => w.epoch === m.epoch) ?? this.#currentWrite();
          p.sentIn.push({ epoch: write.epoch, seq: write.nextSeq });
          records.push(this.#seal(write, ContentType.Handshake, fragment));
        }
        // A piece resent over and over keeps only its last few record numbers.
        if (p.sentIn.length > 8) p.sentIn.shift();
      }
    }
    this.#pack(records);
  }

  /** The peer repeated a message of its last flight: it lost ours (RFC 9147 §5.8). */
  #peerRepeated(authenticated: boolean): void {
    if (this.#outgoing.length === 0 || this.#keyUpdateSent) return;
    if (this.#now < this.#nextPeerResend) return this.#drop("resend_limited", -1);
    let bytes = 0;
    for (const m of this.#outgoing) {
      const overhead = this.#fragmentOverhead(m.epoch);
      for (const p of m.pieces) if (!p.acked) bytes += p.length + overhead;
    }
    if (!authenticated && bytes > UNAUTHENTICATED_RESEND_FACTOR * this.#datagramBytes) {
      return this.#drop("resend_limited", -1);
    }
    this.#nextPeerResend = this.#now + this.#config.retransmit.initialMs;
    this.#timer.restart(this.#now);
    this.#events.push({ type: "retransmit", cause: "peer_repeat" });
    this.#transmitOutgoing();
  }

  #sendKeyUpdate(requestUpdate: boolean): void {
    if (this.#keyUpdateSent) return;
    if (this.#outgoing.length > 0) {
      this.#keyUpdateOwed = (this.#keyUpdateOwed ?? false) || requestUpdate;
      return;
    }
    this.#keyUpdateSent = true;
    const write = this.#currentWrite();
    const seq = this.#nextMessageSeq++;
    this.#sendMessages([
      this.#message(write.epoch, HandshakeType13.KeyUpdate, seq, encodeKeyUpdate(requestUpdate)),
    ]);
  }

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

  // ---- endings -----------------------------------------------------------------------

  #drop(reason: DropReason, epoch: number): void {
    this.#events.push({ type: "dropped", reason, epoch });
  }

  #fail(error: unknown): void {
    if (this.#phase === "closed") return;
    if (error instanceof SequenceLimit) {
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
    this.#outgoing = [];
    this.#inbound.clear();
    this.#memory.releaseAll();
    this.#events.push({ type: "closed", reason, error, afterHandshake, cause, alert, internal });
  }

  #trySendAlert(level: number, description: number): void {
    try {
      this.#sendAlert(level, description);
    } catch {
      // Keys spent or broken: close silently.
    }
  }

  /** An alert in the newest epoch we write, or in the clear before we have keys. */
  #sendAlert(level: number, description: number): void {
    const body = encodeAlert(level, description);
    const record = this.#write.length === 0
      ? plaintextRecord(ContentType.Alert, this.#plainNextSeq++, body)
      : this.#seal(this.#currentWrite(), ContentType.Alert, body);
    this.#events.push({
      type: "alert",
      direction: "sent",
      level: level === AlertLevel.Fatal ? "fatal" : "warning",
      description: alertName(description),
    });
    this.#transmits.push(record);
  }
}

/** A write key's records are spent: the connection ends without an alert. */
class SequenceLimit extends Error {
  constructor() {
    super("record limit of the write key reached");
  }
}

function writeU24(out: Uint8Array, at: number, v: number): void {
  out[at] = (v >>> 16) & 0xff;
  out[at + 1] = (v >>> 8) & 0xff;
  out[at + 2] = v & 0xff;
}

/** An epoch-0 record in the DTLSPlaintext header (legacy version DTLS 1.2). */
function plaintextRecord(type: number, seq: number, fragment: Uint8Array): Uint8Array {
  const out = new Uint8Array(PLAINTEXT_HEADER_LENGTH + fragment.length);
  out[0] = type;
  out[1] = 0xfe;
  out[2] = 0xfd;
  const high = Math.floor(seq / 0x100000000);
  out[5] = (high >>> 8) & 0xff;
  out[6] = high & 0xff;
  out[7] = (seq >>> 24) & 0xff;
  out[8] = (seq >>> 16) & 0xff;
  out[9] = (seq >>> 8) & 0xff;
  out[10] = seq & 0xff;
  out[11] = fragment.length >>> 8;
  out[12] = fragment.length & 0xff;
  out.set(fragment, PLAINTEXT_HEADER_LENGTH);
  return out;
}

/** The bytes of a parsed record, header and ciphertext (views of one datagram). */
function wholeRecord(record: UnifiedRecord): Uint8Array {
  const { header, encrypted } = record;
  return new Uint8Array(header.buffer, header.byteOffset, header.length + encrypted.length);
}
