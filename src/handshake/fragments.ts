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
 * limit before anything is allocated, only a small window of future
 * `message_seq`s is buffered, and the total buffered bytes are capped.
 *
 * @module
 */

import { DecodeError, Reader } from "../codec/reader.ts";
import { Writer } from "../codec/writer.ts";

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

/** Whether `a[at, at + b.length)` equals `b`. */
function sameBytes(a: Uint8Array, at: number, b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (a[at + i] !== b[i]) return false;
  return true;
}

/**
 * Reassembles one handshake message from fragments arriving in any order,
 * possibly duplicated or overlapping (RFC 6347 §4.2.3: a retransmission may be
 * cut at different boundaries than the original).
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
  readonly #buf: Uint8Array;
  /**
   * One flag per body byte, set once the byte has arrived. Absent until a
   * partial fragment arrives (a message that comes whole never needs one) and
   * dropped again once the message is complete.
   */
  #have: Uint8Array | undefined;
  #filled = 0;
  #seen = false;

  /**
   * Prepares for a message of `length` bytes. Throws {@link DecodeError} when
   * `length > maxLength`, before allocating: the length comes from the peer.
   */
  constructor(msgType: number, length: number, messageSeq: number, maxLength: number) {
    if (!Number.isInteger(length) || length < 0 || length > maxLength) {
      throw new DecodeError("Handshake.length", `${length} bytes exceed the limit of ${maxLength}`);
    }
    this.msgType = msgType;
    this.length = length;
    this.messageSeq = messageSeq;
    this.#buf = new Uint8Array(length);
  }

  /**
   * Adds a fragment. Returns `"inconsistent"`, leaving the state unchanged,
   * when the fragment's type, length or sequence differ from this message's,
   * when it does not fit the message, or when it overlaps received bytes with
   * different ones. Duplicates are `"ok"`.
   */
  add(f: HandshakeFragment): "ok" | "inconsistent" {
    const offset = f.fragmentOffset;
    const n = f.fragmentLength;
    if (
      f.msgType !== this.msgType || f.length !== this.length ||
      f.messageSeq !== this.messageSeq || f.body.length !== n || offset < 0 ||
      offset + n > this.length
    ) {
      return "inconsistent";
    }
    this.#seen = true;
    if (this.#filled === this.length) {
      // Complete already: a fragment can only repeat what we have.
      return sameBytes(this.#buf, offset, f.body) ? "ok" : "inconsistent";
    }
    if (this.#filled === 0) {
      // First bytes: nothing to compare against.
      this.#buf.set(f.body, offset);
      this.#filled = n;
      if (n > 0 && n < this.length) {
        this.#have = new Uint8Array(this.length).fill(1, offset, offset + n);
      }
      return "ok";
    }
    const have = this.#have!;
    // Check every overlap before writing anything, so a rejected fragment
    // leaves no trace.
    for (let i = 0; i < n; i++) {
      if (have[offset + i] === 1 && this.#buf[offset + i] !== f.body[i]) return "inconsistent";
    }
    for (let i = 0; i < n; i++) {
      if (have[offset + i] === 0) {
        have[offset + i] = 1;
        this.#buf[offset + i] = f.body[i]!;
        this.#filled++;
      }
    }
    if (this.#filled === this.length) this.#have = undefined;
    return "ok";
  }

  /** Whether every byte has arrived (for an empty message: whether any fragment has). */
  get complete(): boolean {
    return this.#seen && this.#filled === this.length;
  }

  /** The reassembled body; throws if the message is not complete yet (a caller bug). */
  message(): Uint8Array {
    if (!this.complete) throw new Error("Cannot read handshake message: incomplete");
    return this.#buf;
  }
}

/**
 * Reassembly memory shared by many queues (every handshake of an endpoint):
 * a queue reserves a message's declared length before allocating it and
 * releases it when the message is handed out or dropped.
 */
export interface ReassemblyBudget {
  /** Takes `bytes` from the budget; false (taking nothing) when they do not fit. */
  reserve(bytes: number): boolean;
  /** Gives back bytes taken with {@link reserve}. */
  release(bytes: number): void;
}

/** A {@link ReassemblyBudget} with a fixed limit. */
export class SharedReassemblyBudget implements ReassemblyBudget {
  /** The most bytes reserved at once. */
  readonly limit: number;
  #used = 0;

  /** A budget of `limit` bytes. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`Cannot create reassembly budget: limit ${limit}`);
    }
    this.limit = limit;
  }

  /** Bytes currently reserved. */
  get used(): number {
    return this.#used;
  }

  reserve(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/** Limits for {@link HandshakeReassembler}. */
export interface HandshakeReassemblerOptions {
  /** The largest message body accepted; longer declared lengths are `"overflow"`. */
  maxMessageLength: number;
  /** The most body bytes buffered across all pending messages. */
  maxBufferedBytes: number;
  /** How many message_seq values from `nextSeq` on are buffered (default 8). */
  window?: number;
  /** Memory shared with other queues; a message that does not fit it is `"busy"`. */
  budget?: ReassemblyBudget | undefined;
}

/**
 * A connection's inbound handshake queue (RFC 6347 §4.2.2): buffers fragments
 * of messages whose message_seq is at or a little past the next expected one,
 * drops those of messages already processed, and hands out complete messages
 * strictly in message_seq order, so the handshake logic sees an ordered,
 * loss-free stream of whole messages.
 *
 * Buffered bytes are counted by each pending message's declared length, since
 * that is what is allocated for it.
 */
export class HandshakeReassembler {
  readonly #maxMessageLength: number;
  readonly #maxBufferedBytes: number;
  readonly #window: number;
  readonly #budget: ReassemblyBudget | undefined;
  readonly #pending = new Map<number, MessageReassembler>();
  #nextSeq = 0;
  #bufferedBytes = 0;

  /** Creates an empty queue expecting message_seq 0. */
  constructor(opts: HandshakeReassemblerOptions) {
    const window = opts.window ?? 8;
    if (!Number.isInteger(window) || window < 1) {
      throw new RangeError(`Cannot create HandshakeReassembler: window ${window}`);
    }
    this.#maxMessageLength = opts.maxMessageLength;
    this.#maxBufferedBytes = opts.maxBufferedBytes;
    this.#window = window;
    this.#budget = opts.budget;
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
    for (const [s, m] of this.#pending) {
      if (s < seq || s >= seq + this.#window) this.#drop(s, m);
    }
  }

  /** Body bytes currently reserved by pending messages. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /**
   * Adds a fragment:
   * - `"buffered"`: kept (or a duplicate of bytes already kept);
   * - `"old"`: its message_seq is below `nextSeq`, i.e. a retransmission of a
   *   message already processed; RFC 6347 §4.2.4 suggests the caller may take
   *   this as a sign its own last flight was lost;
   * - `"future"`: beyond the window, dropped (the peer will retransmit);
   * - `"inconsistent"`: contradicts fragments already kept for that message_seq;
   * - `"overflow"`: the message is longer than `maxMessageLength`, or would
   *   push the buffered bytes past `maxBufferedBytes`; dropped;
   * - `"busy"`: the shared budget has no room for it now; dropped (the peer
   *   will retransmit, and the fault is not necessarily its own).
   */
  add(
    f: HandshakeFragment,
  ): "buffered" | "old" | "future" | "inconsistent" | "overflow" | "busy" {
    const seq = f.messageSeq;
    if (seq < this.#nextSeq) return "old";
    if (seq >= this.#nextSeq + this.#window) return "future";
    const existing = this.#pending.get(seq);
    if (existing) return existing.add(f) === "ok" ? "buffered" : "inconsistent";
    if (f.length > this.#maxMessageLength) return "overflow";
    if (this.#bufferedBytes + f.length > this.#maxBufferedBytes) return "overflow";
    // Reserve the shared budget before allocating anything for the message.
    if (this.#budget !== undefined && !this.#budget.reserve(f.length)) return "busy";
    const m = new MessageReassembler(f.msgType, f.length, seq, this.#maxMessageLength);
    // A fragment that does not fit its own header is not worth a slot.
    if (m.add(f) !== "ok") {
      this.#budget?.release(f.length);
      return "inconsistent";
    }
    this.#pending.set(seq, m);
    this.#bufferedBytes += m.length;
    return "buffered";
  }

  /** The next complete message in message_seq order, advancing `nextSeq`; else undefined. */
  next(): HandshakeMessage | undefined {
    const m = this.#pending.get(this.#nextSeq);
    if (!m || !m.complete) return undefined;
    this.#drop(this.#nextSeq, m);
    this.#nextSeq++;
    return { msgType: m.msgType, messageSeq: m.messageSeq, body: m.message() };
  }

  /** Drops everything buffered (e.g. once the handshake is over); `nextSeq` is kept. */
  clear(): void {
    this.#budget?.release(this.#bufferedBytes);
    this.#pending.clear();
    this.#bufferedBytes = 0;
  }

  #drop(seq: number, m: MessageReassembler): void {
    this.#pending.delete(seq);
    this.#bufferedBytes -= m.length;
    this.#budget?.release(m.length);
  }
}
