/**
 * DTLS handshake framing, fragmentation and reassembly (RFC 6347 §4.2.2,
 * §4.2.3).
 *
 * Every DTLS handshake message carries a 12-byte header naming its place in
 * the handshake (`message_seq`) and which slice of the body the record holds
 * (`fragment_offset`, `fragment_length`), because a datagram may be lost,
 * reordered or duplicated, and a message may be larger than a datagram.
 *
 * Reassembly is the part an attacker reaches before any authentication, so it
 * is bounded everywhere: a message's declared length is checked against a
 * limit and allocates nothing, only the bytes that arrived are held and
 * charged, only a small window of future `message_seq`s is buffered, and the
 * bytes held are capped per connection and by a shared account.
 *
 * @module
 */

import { DecodeError, Reader } from "../codec/reader.ts";
import { Writer } from "../codec/writer.ts";
import { BUFFER_OVERHEAD } from "../memory/budget.ts";

/** msg_type(1) + length(3) + message_seq(2) + fragment_offset(3) + fragment_length(3). */
export const HANDSHAKE_HEADER_LENGTH = 12;

/** The largest value of a uint24 field (`length`, `fragment_offset`, `fragment_length`). */
const MAX_U24 = 0xff_ffff;
/** The largest `message_seq` (uint16). */
const MAX_U16 = 0xffff;

/** One handshake fragment as it sits in a record (RFC 6347 §4.2.2). */
export interface HandshakeFragment {
  /** msg_type. */
  msgType: number;
  /** `length`: the length of the whole message body, not of this fragment. */
  length: number;
  /** message_seq. */
  messageSeq: number;
  /** Where this fragment's bytes start within the message body. */
  fragmentOffset: number;
  /** How many body bytes this fragment carries (`body.length`). */
  fragmentLength: number;
  /** The fragment bytes, a subarray of the record. */
  body: Uint8Array;
}

/** A complete handshake message, in the order the peer numbered it. */
export interface HandshakeMessage {
  /** msg_type. */
  msgType: number;
  /** message_seq. */
  messageSeq: number;
  /** The epoch its fragments came in: every fragment of one message comes in one epoch. */
  epoch: number;
  /** The reassembled body (owned by the caller; not tied to any datagram). */
  body: Uint8Array;
}

/**
 * Splits the plaintext of one handshake record into its fragments. RFC 6347
 * §4.2.3 lets a record carry several handshake messages (or fragments), packed
 * back to back, so this reads headers until the record is used up.
 *
 * Throws {@link DecodeError} for an empty record (RFC 5246 §6.2.1: handshake
 * records MUST NOT be empty), a truncated header, fragment bytes that run past
 * the record, or a fragment that runs past its message's `length`.
 */
export function parseHandshakeFragments(recordFragment: Uint8Array): HandshakeFragment[] {
  if (recordFragment.length === 0) throw new DecodeError("Handshake", "empty record");
  const r = new Reader(recordFragment);
  const fragments: HandshakeFragment[] = [];
  while (r.remaining > 0) {
    const msgType = r.u8("Handshake.msg_type");
    const length = r.u24("Handshake.length");
    const messageSeq = r.u16("Handshake.message_seq");
    const fragmentOffset = r.u24("Handshake.fragment_offset");
    const fragmentLength = r.u24("Handshake.fragment_length");
    const body = r.bytes(fragmentLength, "Handshake.body");
    if (fragmentOffset + fragmentLength > length) {
      throw new DecodeError("Handshake.fragment_offset", "fragment runs past message length");
    }
    fragments.push({ msgType, length, messageSeq, fragmentOffset, fragmentLength, body });
  }
  return fragments;
}

function checkHeaderArgs(msgType: number, messageSeq: number, body: Uint8Array): void {
  if (!Number.isInteger(msgType) || msgType < 0 || msgType > 0xff) {
    throw new RangeError(`Cannot encode handshake message: msg_type ${msgType} out of range`);
  }
  if (!Number.isInteger(messageSeq) || messageSeq < 0 || messageSeq > MAX_U16) {
    throw new RangeError(`Cannot encode handshake message: message_seq ${messageSeq} out of range`);
  }
  if (body.length > MAX_U24) {
    throw new RangeError(`Cannot encode handshake message: ${body.length} bytes exceed 2^24-1`);
  }
}

function writeFragment(
  msgType: number,
  messageSeq: number,
  body: Uint8Array,
  offset: number,
  chunk: Uint8Array,
): Uint8Array {
  return new Writer(HANDSHAKE_HEADER_LENGTH + chunk.length)
    .u8(msgType)
    .u24(body.length)
    .u16(messageSeq)
    .u24(offset)
    .u24(chunk.length)
    .bytes(chunk)
    .finish();
}

/**
 * The whole message as one fragment (offset 0, fragment_length = length).
 * RFC 6347 §4.2.6 hashes every handshake message into the transcript "as if
 * each handshake message had been sent as a single fragment", so this is also
 * the exact transcript input for a message, whichever way it travelled.
 */
export function encodeHandshakeMessage(
  msgType: number,
  messageSeq: number,
  body: Uint8Array,
): Uint8Array {
  checkHeaderArgs(msgType, messageSeq, body);
  return writeFragment(msgType, messageSeq, body, 0, body);
}

/**
 * Splits a message into header+fragment chunks whose bodies are at most
 * `maxFragmentBody` bytes (RFC 6347 §4.2.3: fragments must fit the PMTU). An
 * empty body still yields one fragment, so the message is sent at all.
 */
export function fragmentHandshakeMessage(
  msgType: number,
  messageSeq: number,
  body: Uint8Array,
  maxFragmentBody: number,
): Uint8Array[] {
  checkHeaderArgs(msgType, messageSeq, body);
  if (!Number.isInteger(maxFragmentBody) || maxFragmentBody < 1) {
    throw new RangeError(`Cannot fragment handshake message: maxFragmentBody ${maxFragmentBody}`);
  }
  if (body.length === 0) return [writeFragment(msgType, messageSeq, body, 0, body)];
  const out: Uint8Array[] = [];
  for (let offset = 0; offset < body.length; offset += maxFragmentBody) {
    const chunk = body.subarray(offset, offset + maxFragmentBody);
    out.push(writeFragment(msgType, messageSeq, body, offset, chunk));
  }
  return out;
}

/** A received run of a message's body: `bytes` sit at `start`. */
interface Piece {
  readonly start: number;
  readonly bytes: Uint8Array;
}

/** Memory charged for a message's pieces (a {@link MemoryAccount} fits). */
export interface ReassemblyAccount {
  /** Takes `bytes`; false (taking nothing) when they do not fit. */
  charge(bytes: number): boolean;
  /** Gives back bytes taken with {@link charge}. */
  release(bytes: number): void;
}

/** An account with no limit, for a message reassembled outside any budget (tests). */
const UNLIMITED: ReassemblyAccount = { charge: () => true, release: () => {} };

/**
 * The most separate pieces one message is kept in. An honest peer sends a
 * 16 KiB message in a few dozen fragments even over a 576-byte path, and a
 * retransmission cut at other boundaries only adds the gaps it fills; a peer
 * scattering tiny fragments gets its further fragments dropped.
 */
export const MAX_PIECES = 128;

/**
 * Reassembles one handshake message from fragments arriving in any order,
 * possibly duplicated or overlapping (RFC 6347 §4.2.3: a retransmission may be
 * cut at different boundaries than the original).
 *
 * Only the bytes that arrived are held: each fragment's new bytes are copied
 * once, into a piece of their own, and the pieces are joined once, when the
 * last one arrives. The message's declared `length` allocates nothing, so a
 * peer is charged for what it sent, not for what it announced, and no input
 * makes reassembly copy more than twice what it received.
 *
 * Bytes received twice must agree: a peer that sends two different versions
 * of one message is either broken or hostile, and the transcript could not say
 * which version was "the" message, so that is reported as `"inconsistent"`.
 */
export class MessageReassembler {
  /** msg_type every fragment must carry. */
  readonly msgType: number;
  /** The message length every fragment must declare. */
  readonly length: number;
  /** message_seq every fragment must carry. */
  readonly messageSeq: number;
  /** The record epoch every fragment must come in (RFC 6347 §4.1: a message is in one epoch). */
  epoch = 0;
  readonly #account: ReassemblyAccount;
  /** Disjoint runs in offset order. */
  #pieces: Piece[] = [];
  #filled = 0;
  #seen = false;
  /** Bytes charged to the account for this message. */
  #charged = 0;

  /**
   * Prepares for a message of `length` bytes. Throws {@link DecodeError} when
   * `length > maxLength`: the length comes from the peer.
   */
  constructor(
    msgType: number,
    length: number,
    messageSeq: number,
    maxLength: number,
    account: ReassemblyAccount = UNLIMITED,
  ) {
    if (!Number.isInteger(length) || length < 0 || length > maxLength) {
      throw new DecodeError("Handshake.length", `${length} bytes exceed the limit of ${maxLength}`);
    }
    this.msgType = msgType;
    this.length = length;
    this.messageSeq = messageSeq;
    this.#account = account;
  }

  /**
   * Adds a fragment. Returns `"inconsistent"`, leaving the state unchanged,
   * when the fragment's type, length or sequence differ from this message's,
   * when it does not fit the message, or when it overlaps received bytes with
   * different ones; `"busy"`, also leaving it unchanged, when the account
   * cannot take its new bytes or the message would be in too many pieces.
   * Duplicates are `"ok"`.
   */
  add(f: HandshakeFragment): "ok" | "inconsistent" | "busy" {
    const offset = f.fragmentOffset;
    const n = f.fragmentLength;
    const end = offset + n;
    if (
      f.msgType !== this.msgType || f.length !== this.length ||
      f.messageSeq !== this.messageSeq || f.body.length !== n || offset < 0 || end > this.length
    ) {
      return "inconsistent";
    }
    // Check every overlap before changing anything, so a rejected fragment
    // leaves no trace, and note the gaps this fragment fills.
    const pieces = this.#pieces;
    const gaps: number[] = [];
    let cursor = offset;
    for (const p of pieces) {
      const pEnd = p.start + p.bytes.length;
      if (pEnd <= offset) continue;
      if (p.start >= end) break;
      const from = Math.max(p.start, offset);
      const to = Math.min(pEnd, end);
      for (let at = from; at < to; at++) {
        if (p.bytes[at - p.start] !== f.body[at - offset]) return "inconsistent";
      }
      if (p.start > cursor) gaps.push(cursor, p.start);
      cursor = Math.max(cursor, pEnd);
    }
    if (cursor < end) gaps.push(cursor, end);
    this.#seen = true;
    if (gaps.length === 0) return "ok";
    if (pieces.length + gaps.length / 2 > MAX_PIECES) return "busy";
    let added = 0;
    for (let i = 0; i < gaps.length; i += 2) added += gaps[i + 1]! - gaps[i]!;
    const cost = added + (gaps.length / 2) * BUFFER_OVERHEAD;
    if (!this.#account.charge(cost)) return "busy";
    for (let i = 0; i < gaps.length; i += 2) {
      const from = gaps[i]!;
      const piece = { start: from, bytes: f.body.slice(from - offset, gaps[i + 1]! - offset) };
      let at = pieces.length;
      while (at > 0 && pieces[at - 1]!.start > from) at--;
      pieces.splice(at, 0, piece);
    }
    this.#charged += cost;
    this.#filled += added;
    return "ok";
  }

  /** Whether every byte has arrived (for an empty message: whether any fragment has). */
  get complete(): boolean {
    return this.#seen && this.#filled === this.length;
  }

  /** The reassembled body; throws if the message is not complete yet (a caller bug). */
  message(): Uint8Array {
    if (!this.complete) throw new Error("Cannot read handshake message: incomplete");
    const pieces = this.#pieces;
    if (pieces.length === 1) return pieces[0]!.bytes;
    const body = new Uint8Array(this.length);
    for (const p of pieces) body.set(p.bytes, p.start);
    return body;
  }

  /** Gives back everything charged (the message was handed out or dropped). */
  release(): void {
    this.#account.release(this.#charged);
    this.#charged = 0;
    this.#pieces = [];
    this.#filled = 0;
  }
}

/** Limits for {@link HandshakeReassembler}. */
export interface HandshakeReassemblerOptions {
  /** The largest message body accepted; longer declared lengths are `"overflow"`. */
  maxMessageLength: number;
  /** The most bytes held across all pending messages (this connection's own limit). */
  maxBufferedBytes: number;
  /** How many message_seq values from `nextSeq` on are buffered (default 8). */
  window?: number;
  /**
   * Memory shared with other connections (the source's share, the endpoint's
   * total); bytes it refuses are `"busy"`.
   */
  account?: ReassemblyAccount | undefined;
}

/** No messages: what an empty queue iterates. */
const NO_MESSAGES: ReadonlyMap<number, MessageReassembler> = new Map();

/**
 * A connection's inbound handshake queue (RFC 6347 §4.2.2): buffers fragments
 * of messages whose message_seq is at or a little past the next expected one,
 * drops those of messages already processed, and hands out complete messages
 * strictly in message_seq order, so the handshake logic sees an ordered,
 * loss-free stream of whole messages.
 *
 * Buffered bytes are counted as they are allocated: the runs of received
 * bytes, plus {@link BUFFER_OVERHEAD} for each.
 */
export class HandshakeReassembler implements ReassemblyAccount {
  readonly #maxMessageLength: number;
  readonly #maxBufferedBytes: number;
  readonly #window: number;
  #account: ReassemblyAccount;
  /**
   * Messages being put together, by message_seq; made on the first one and
   * let go when empty, so that an idle connection keeps no map.
   */
  #pending: Map<number, MessageReassembler> | undefined = undefined;
  #nextSeq = 0;
  #bufferedBytes = 0;
  /** Set when the last charge failed on this queue's own limit. */
  #overLimit = false;

  /** Creates an empty queue expecting message_seq 0. */
  constructor(opts: HandshakeReassemblerOptions) {
    const window = opts.window ?? 8;
    if (!Number.isInteger(window) || window < 1) {
      throw new RangeError(`Cannot create HandshakeReassembler: window ${window}`);
    }
    this.#maxMessageLength = opts.maxMessageLength;
    this.#maxBufferedBytes = opts.maxBufferedBytes;
    this.#window = window;
    this.#account = opts.account ?? UNLIMITED;
  }

  /** The message_seq of the next message {@link next} will hand out. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /**
   * Moves the expected message_seq, e.g. to the seq after a ClientHello the
   * endpoint already handled statelessly (RFC 6347 §4.2.2). Buffered
   * messages outside the new window are dropped.
   */
  set nextSeq(seq: number) {
    if (!Number.isInteger(seq) || seq < 0) {
      throw new RangeError(`Cannot set nextSeq: ${seq}`);
    }
    this.#nextSeq = seq;
    for (const [s, m] of this.#pending ?? NO_MESSAGES) {
      if (s < seq || s >= seq + this.#window) this.#drop(s, m);
    }
  }

  /** Bytes currently held by pending messages. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** @internal The pending messages charge through here: this queue's limit, then the shared account. */
  charge(bytes: number): boolean {
    if (this.#bufferedBytes + bytes > this.#maxBufferedBytes) {
      this.#overLimit = true;
      return false;
    }
    if (!this.#account.charge(bytes)) return false;
    this.#bufferedBytes += bytes;
    return true;
  }

  /** @internal */
  release(bytes: number): void {
    const n = Math.min(bytes, this.#bufferedBytes);
    this.#bufferedBytes -= n;
    this.#account.release(n);
  }

  /**
   * Adds a fragment:
   * - `"buffered"`: kept (or a duplicate of bytes already kept);
   * - `"old"`: its message_seq is below `nextSeq`, i.e. a retransmission of a
   *   message already processed; RFC 6347 §4.2.4 suggests the caller may take
   *   this as a sign its own last flight was lost;
   * - `"future"`: beyond the window, dropped (the peer will retransmit);
   * - `"inconsistent"`: contradicts fragments already kept for that message_seq;
   * - `"overflow"`: the message is longer than `maxMessageLength`, or its bytes
   *   would push this queue past `maxBufferedBytes`; dropped;
   * - `"busy"`: the shared account has no room for it now, or the message is
   *   in too many pieces; dropped (the peer will retransmit, and the fault is
   *   not necessarily its own);
   * - `"stale"`: it came in an older epoch than fragments of the same message
   *   already kept; dropped (an epoch-0 record is anyone's).
   *
   * A fragment that is a whole message and the next one expected is not
   * charged: it is handed out by the {@link next} call that follows, so even
   * a full shared account never stops an unfragmented handshake.
   */
  add(
    f: HandshakeFragment,
    epoch = 0,
  ): "buffered" | "old" | "future" | "inconsistent" | "overflow" | "busy" | "stale" {
    const seq = f.messageSeq;
    if (seq < this.#nextSeq) return "old";
    if (seq >= this.#nextSeq + this.#window) return "future";
    if (f.length > this.#maxMessageLength) return "overflow";
    let m = this.#pending?.get(seq);
    if (m !== undefined && m.epoch !== epoch) {
      // A message is sent in one epoch: fragments of a newer one (the
      // authenticated peer's) replace what an older epoch left.
      if (epoch < m.epoch) return "stale";
      this.#drop(seq, m);
      m = undefined;
    }
    const created = m === undefined;
    if (m === undefined) {
      const whole = seq === this.#nextSeq && f.fragmentOffset === 0 &&
        f.fragmentLength === f.length;
      m = new MessageReassembler(
        f.msgType,
        f.length,
        seq,
        this.#maxMessageLength,
        whole ? UNLIMITED : this,
      );
      m.epoch = epoch;
    }
    this.#overLimit = false;
    const verdict = m.add(f);
    if (verdict === "inconsistent") return "inconsistent";
    if (verdict === "busy") return this.#overLimit ? "overflow" : "busy";
    if (created) (this.#pending ??= new Map()).set(seq, m);
    return "buffered";
  }

  /** The next complete message in message_seq order, advancing `nextSeq`; else undefined. */
  next(): HandshakeMessage | undefined {
    const m = this.#pending?.get(this.#nextSeq);
    if (!m || !m.complete) return undefined;
    const body = m.message();
    this.#drop(this.#nextSeq, m);
    this.#nextSeq++;
    return { msgType: m.msgType, messageSeq: m.messageSeq, epoch: m.epoch, body };
  }

  /** Drops what older epochs left: once a new epoch is read, their messages cannot be the peer's. */
  dropEpochsBelow(epoch: number): void {
    for (const [s, m] of this.#pending ?? NO_MESSAGES) if (m.epoch < epoch) this.#drop(s, m);
  }

  /** Drops everything buffered (e.g. once the handshake is over); `nextSeq` is kept. */
  clear(): void {
    for (const [s, m] of this.#pending ?? NO_MESSAGES) this.#drop(s, m);
  }

  /** Drops everything and charges from now on to `account` (the old one is let go). */
  reset(account: ReassemblyAccount): void {
    this.clear();
    this.#account = account;
  }

  #drop(seq: number, m: MessageReassembler): void {
    const pending = this.#pending;
    if (pending !== undefined) {
      pending.delete(seq);
      if (pending.size === 0) this.#pending = undefined;
    }
    m.release();
  }
}
