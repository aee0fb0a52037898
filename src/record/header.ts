/**
 * The DTLS record header (RFC 6347 §4.1):
 *
 *     struct {
 *       ContentType type;                 // 1 byte
 *       ProtocolVersion version;          // 2 bytes
 *       uint16 epoch;                     // 2 bytes
 *       uint48 sequence_number;           // 6 bytes
 *       uint16 length;                    // 2 bytes
 *       opaque fragment[DTLSPlaintext.length];
 *     } DTLSPlaintext;
 *
 * A record protected under a Connection ID (RFC 9146 §4) has content type
 * tls12_cid and the CID between the sequence number and the length; its
 * length is not on the wire, so a walk is told the length of the CIDs it
 * expects (those we asked the peer to use).
 *
 * One datagram may carry several records (RFC 6347 §4.1.1). Records are
 * returned as views into the datagram: nothing is copied here.
 *
 * @module
 */

import { readU48 } from "../codec/reader.ts";
import { writeU48 } from "../codec/writer.ts";

/** ContentType values (RFC 5246 §6.2.1). */
export const ContentType = {
  ChangeCipherSpec: 20,
  Alert: 21,
  Handshake: 22,
  ApplicationData: 23,
  /** RFC 9146 §4: a record with a Connection ID, its real type inside the encryption. */
  Tls12Cid: 25,
} as const;

/** Bytes of a DTLS 1.0/1.2 record header. */
export const RECORD_HEADER_LENGTH = 13;

/** ProtocolVersion of DTLS 1.2 on the wire: {254, 253} (RFC 6347 §4.1). */
export const DTLS_1_2 = 0xfefd;

/** ProtocolVersion of DTLS 1.0: {254, 255}, seen in ClientHello records (RFC 6347 §4.2.1). */
export const DTLS_1_0 = 0xfeff;

/** The most a DTLSPlaintext carries: its length MUST NOT exceed 2^14 (RFC 5246 §6.2.1). */
export const MAX_PLAINTEXT_LENGTH = 16384;

/**
 * The largest fragment a record may carry: a TLSCiphertext may not exceed
 * 2^14 + 2048 bytes (RFC 5246 §6.2.3, applied to DTLS by RFC 6347 §4.1).
 */
export const MAX_FRAGMENT_LENGTH = 16384 + 2048;

/** The largest sequence number plus one: it is a uint48. */
const SEQ_LIMIT = 2 ** 48;

/** One record of a datagram; both byte fields are subarrays of the datagram. */
export interface RecordView {
  /** ContentType, as received (may be unknown). */
  type: number;
  /** ProtocolVersion as a 16-bit number, e.g. {@link DTLS_1_2}. */
  version: number;
  /** The epoch (uint16). */
  epoch: number;
  /** The 48-bit sequence number, exact in a JS number. */
  seq: number;
  /** The Connection ID of a tls12_cid record (RFC 9146); empty for any other. */
  cid: Uint8Array;
  /** The record body: DTLSPlaintext/DTLSCiphertext.fragment. */
  fragment: Uint8Array;
  /** The whole record, header included. */
  raw: Uint8Array;
}

/**
 * A walk over one datagram's records that fills this one view in place:
 * the per-datagram path of an established connection, where an array and
 * an object per record would be garbage per datagram. The fields describe
 * the record of the last `next()` that returned true.
 *
 * Per RFC 6347 §4.1.2.7 invalid records are silently discarded, not fatal.
 * A truncated header, or a length running past the end of the datagram,
 * means the framing of everything after it is unknown, so the walk stops
 * there and counts one malformed record. A record longer than
 * {@link MAX_FRAGMENT_LENGTH} that still fits is skipped and counted, and
 * the walk goes on: its framing is intact. Unknown content types and
 * versions are returned as they are; the caller decides.
 */
export class RecordCursor implements RecordView {
  type = 0;
  version = 0;
  epoch = 0;
  seq = 0;
  cid: Uint8Array = EMPTY;
  fragment: Uint8Array = EMPTY;
  /** Malformed records met so far in this datagram. */
  malformed = 0;
  #datagram: Uint8Array = EMPTY;
  #at = 0;
  #start = 0;
  /** Where the current record's fragment starts. */
  #body = 0;
  /** The length of the CIDs of tls12_cid records; 0: such records are framed as any other. */
  #cidLength = 0;

  /**
   * Starts a walk over `datagram`, whose tls12_cid records carry CIDs of
   * `cidLength` bytes (0: none are expected).
   */
  reset(datagram: Uint8Array, cidLength = 0): this {
    this.#datagram = datagram;
    this.#at = 0;
    this.malformed = 0;
    this.fragment = EMPTY;
    this.cid = EMPTY;
    this.#cidLength = cidLength;
    return this;
  }

  /** Moves to the next well-framed record; false when there is none. */
  next(): boolean {
    if (!this.skip()) return false;
    const datagram = this.#datagram;
    const at = this.#start;
    this.type = datagram[at]!;
    this.version = (datagram[at + 1]! << 8) | datagram[at + 2]!;
    this.epoch = (datagram[at + 3]! << 8) | datagram[at + 4]!;
    this.seq = readU48(datagram, at + 5);
    this.cid = this.#body === at + RECORD_HEADER_LENGTH
      ? EMPTY
      : datagram.subarray(at + 11, this.#body - 2);
    this.fragment = datagram.subarray(this.#body, this.#at);
    return true;
  }

  /**
   * Moves past the next well-framed record without reading its fields (the
   * framing rules above, malformed records counted); false when there is none.
   */
  skip(): boolean {
    const datagram = this.#datagram;
    const end = datagram.length;
    // Reads the header bytes directly: this runs once per datagram received.
    while (this.#at < end) {
      const at = this.#at;
      const cidLength = datagram[at] === ContentType.Tls12Cid ? this.#cidLength : 0;
      const lengthAt = at + 11 + cidLength;
      if (end - at < RECORD_HEADER_LENGTH + cidLength) {
        this.malformed++;
        this.#at = end;
        return false;
      }
      const length = (datagram[lengthAt]! << 8) | datagram[lengthAt + 1]!;
      const body = lengthAt + 2;
      if (length > end - body) {
        this.malformed++;
        this.#at = end;
        return false;
      }
      this.#at = body + length;
      if (length > MAX_FRAGMENT_LENGTH) {
        this.malformed++;
        continue;
      }
      this.#start = at;
      this.#body = body;
      return true;
    }
    return false;
  }

  /** The whole current record, header included (made when asked: a view per call). */
  get raw(): Uint8Array {
    return this.#datagram.subarray(this.#start, this.#at);
  }

  /** The current record as a view of its own, which the next `next()` leaves alone. */
  view(): RecordView {
    return {
      type: this.type,
      version: this.version,
      epoch: this.epoch,
      seq: this.seq,
      cid: this.cid,
      fragment: this.fragment,
      raw: this.raw,
    };
  }
}

/** Malformed records of `datagram` (see {@link RecordCursor}), counted without building views. */
export function countMalformedRecords(datagram: Uint8Array, cidLength = 0): number {
  const counter = COUNTER.reset(datagram, cidLength);
  while (counter.skip());
  return counter.malformed;
}

const EMPTY = new Uint8Array(0);

/** The walk countMalformedRecords makes: it runs to the end without yielding. */
const COUNTER = new RecordCursor();

/** Splits one datagram into its records, as {@link RecordCursor} walks them. */
export function parseRecords(
  datagram: Uint8Array,
  cidLength = 0,
): { records: RecordView[]; malformed: number } {
  const records: RecordView[] = [];
  const cursor = new RecordCursor().reset(datagram, cidLength);
  while (cursor.next()) records.push(cursor.view());
  return { records, malformed: cursor.malformed };
}

function checkHeader(
  type: number,
  version: number,
  epoch: number,
  seq: number,
  fragment: Uint8Array,
): void {
  if (!Number.isInteger(type) || type < 0 || type > 0xff) {
    throw new RangeError(`Cannot write record: content type ${type}`);
  }
  if (!Number.isInteger(version) || version < 0 || version > 0xffff) {
    throw new RangeError(`Cannot write record: version ${version}`);
  }
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffff) {
    throw new RangeError(`Cannot write record: epoch ${epoch}`);
  }
  // RFC 6347 §4.1: the sequence number MUST NOT wrap; a connection that
  // would need 2^48 records must rekey or close, so this is a bug upstream.
  if (!Number.isInteger(seq) || seq < 0 || seq >= SEQ_LIMIT) {
    throw new RangeError(`Cannot write record: sequence number ${seq}`);
  }
  if (fragment.length > MAX_FRAGMENT_LENGTH) {
    throw new RangeError(`Cannot write record: fragment of ${fragment.length} bytes`);
  }
}

/**
 * Writes the 13 header bytes type(1) || version(2) || epoch(2) || seq(6) ||
 * length(2) (RFC 6347 §4.1) at `at`, unchecked: for callers that validated
 * the fields and write the fragment themselves (the record layer's send path).
 */
export function writeRecordHeader(
  out: Uint8Array,
  at: number,
  type: number,
  version: number,
  epoch: number,
  seq: number,
  length: number,
): void {
  out[at] = type;
  out[at + 1] = version >>> 8;
  out[at + 2] = version;
  out[at + 3] = epoch >>> 8;
  out[at + 4] = epoch;
  writeU48(out, at + 5, seq);
  out[at + 11] = length >>> 8;
  out[at + 12] = length;
}

/**
 * Writes a record (header and fragment) into `out` at `at` and returns the
 * offset just past it. Throws a `RangeError` for a field out of range or a
 * buffer too small: both are programming errors.
 */
export function writeRecord(
  out: Uint8Array,
  at: number,
  type: number,
  version: number,
  epoch: number,
  seq: number,
  fragment: Uint8Array,
): number {
  checkHeader(type, version, epoch, seq, fragment);
  const end = at + RECORD_HEADER_LENGTH + fragment.length;
  if (!Number.isInteger(at) || at < 0 || end > out.length) {
    throw new RangeError(`Cannot write record: ${end - at} bytes do not fit at offset ${at}`);
  }
  writeRecordHeader(out, at, type, version, epoch, seq, fragment.length);
  out.set(fragment, at + RECORD_HEADER_LENGTH);
  return end;
}

/** One record, header and fragment, as a new array. */
export function encodeRecord(
  type: number,
  version: number,
  epoch: number,
  seq: number,
  fragment: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_LENGTH + fragment.length);
  writeRecord(out, 0, type, version, epoch, seq, fragment);
  return out;
}
