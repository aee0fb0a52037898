/**
 * The DTLS 1.3 unified header (RFC 9147 §4), which every record protected
 * under DTLS 1.3 keys carries:
 *
 *     0 1 2 3 4 5 6 7
 *     0 0 1 C S L E E    fixed bits 001, CID present, 16-bit sequence
 *                        number, length present, low two bits of the epoch
 *     [Connection ID]    as long as agreed, when C
 *     sequence number    8 or 16 bits (the low bits; encrypted, §4.2.3)
 *     [length]           16 bits, when L; else the record runs to the datagram's end
 *     encrypted record
 *
 * and the reconstruction of the full sequence number from its low bits
 * (§4.2.2). Parsing takes views into the datagram and checks every length
 * against what is there.
 *
 * @module
 */

/** The fixed bits of a unified header's first byte (0b001xxxxx). */
export const UNIFIED_HEADER_MARK = 0x20;
const C_BIT = 0x10;
const S_BIT = 0x08;
const L_BIT = 0x04;

/** Whether a record's first byte starts a unified header (RFC 9147 §4.1's demultiplexing). */
export function isUnifiedHeader(firstByte: number): boolean {
  return (firstByte & 0xe0) === UNIFIED_HEADER_MARK;
}

/** One DTLS 1.3 ciphertext record, as parsed: views into the datagram. */
export interface UnifiedRecord {
  /** The low two bits of the epoch. */
  readonly epochBits: number;
  /** The Connection ID, when the header carries one (empty otherwise). */
  readonly cid: Uint8Array;
  /** Bytes of the sequence number field: 1 or 2. */
  readonly seqLength: 1 | 2;
  /** Where the (encrypted) sequence number sits in `header`. */
  readonly seqOffset: number;
  /** The header bytes: the additional data of the record's AEAD (§4, with the plaintext sequence number). */
  readonly header: Uint8Array;
  /** The encrypted record: ciphertext and tag. */
  readonly encrypted: Uint8Array;
}

/**
 * The next record of `datagram` at `at`, or undefined when what is there is
 * not a well-framed unified header: a header cut short, a length past the
 * end. `cidLength`: the length of the CIDs agreed for records we receive (0:
 * none; a header that says it carries one is then malformed).
 */
export function parseUnifiedRecord(
  datagram: Uint8Array,
  at: number,
  cidLength: number,
): { readonly record: UnifiedRecord; readonly end: number } | undefined {
  if (at >= datagram.length) return undefined;
  const first = datagram[at]!;
  if (!isUnifiedHeader(first)) return undefined;
  const hasCid = (first & C_BIT) !== 0;
  if (hasCid && cidLength === 0) return undefined;
  const cid = hasCid ? cidLength : 0;
  const seqLength = (first & S_BIT) !== 0 ? 2 : 1;
  const hasLength = (first & L_BIT) !== 0;
  const headerLength = 1 + cid + seqLength + (hasLength ? 2 : 0);
  if (datagram.length - at < headerLength) return undefined;
  let end = datagram.length;
  if (hasLength) {
    const lengthAt = at + 1 + cid + seqLength;
    const length = (datagram[lengthAt]! << 8) | datagram[lengthAt + 1]!;
    end = at + headerLength + length;
    if (end > datagram.length) return undefined;
  }
  return {
    record: {
      epochBits: first & 0x03,
      cid: datagram.subarray(at + 1, at + 1 + cid),
      seqLength,
      seqOffset: 1 + cid,
      header: datagram.subarray(at, at + headerLength),
      encrypted: datagram.subarray(at + headerLength, end),
    },
    end,
  };
}

/** What a unified header says, for writing one. */
export interface UnifiedHeaderFields {
  /** The epoch (its low two bits are written). */
  readonly epoch: number;
  /** The full sequence number (its low 8 or 16 bits are written). */
  readonly seq: number;
  /** Bytes of the sequence number field. */
  readonly seqLength: 1 | 2;
  /** A Connection ID to carry, if any. */
  readonly cid?: Uint8Array;
  /** The length of the encrypted record to write in the header; undefined: no length field. */
  readonly length?: number;
}

/** The header bytes of a record (the sequence number in the clear: it is encrypted after sealing). */
export function encodeUnifiedHeader(fields: UnifiedHeaderFields): Uint8Array {
  const cid = fields.cid ?? new Uint8Array(0);
  const hasLength = fields.length !== undefined;
  if (!(Number.isInteger(fields.epoch) && fields.epoch >= 0)) {
    throw new RangeError(`Cannot write a unified header: epoch ${fields.epoch}`);
  }
  if (!(Number.isInteger(fields.seq) && fields.seq >= 0 && fields.seq < 2 ** 48)) {
    throw new RangeError(`Cannot write a unified header: sequence number ${fields.seq}`);
  }
  if (cid.length > 255) throw new RangeError("Cannot write a unified header: CID over 255 bytes");
  if (hasLength && !(Number.isInteger(fields.length) && fields.length! <= 0xffff)) {
    throw new RangeError(`Cannot write a unified header: length ${fields.length}`);
  }
  const out = new Uint8Array(1 + cid.length + fields.seqLength + (hasLength ? 2 : 0));
  out[0] = UNIFIED_HEADER_MARK | (cid.length > 0 ? C_BIT : 0) |
    (fields.seqLength === 2 ? S_BIT : 0) | (hasLength ? L_BIT : 0) | (fields.epoch & 0x03);
  out.set(cid, 1);
  let at = 1 + cid.length;
  if (fields.seqLength === 2) out[at++] = (fields.seq >>> 8) & 0xff;
  out[at++] = fields.seq & 0xff;
  if (hasLength) {
    out[at++] = fields.length! >>> 8;
    out[at] = fields.length! & 0xff;
  }
  return out;
}

/**
 * The full sequence number a record's low `bits` bits stand for (RFC 9147
 * §4.2.2): the one closest to the next expected, `expected` (one past the
 * highest received so far), that has those low bits and is not negative.
 */
export function reconstructSequenceNumber(low: number, bits: 8 | 16, expected: number): number {
  const window = 2 ** bits;
  const candidate = expected - (expected % window) + low;
  // Of candidate - window, candidate and candidate + window, the closest to expected.
  let best = candidate;
  for (const c of [candidate - window, candidate + window]) {
    if (c >= 0 && Math.abs(c - expected) < Math.abs(best - expected)) best = c;
  }
  return best;
}

/**
 * The epoch a record's low two bits stand for (RFC 9147 §4.2.2): the
 * closest, at or above the lowest one still read, to the current one.
 */
export function reconstructEpoch(bits: number, current: number): number {
  const candidate = current - (current % 4) + bits;
  let best = candidate;
  for (const c of [candidate - 4, candidate + 4]) {
    if (c >= 0 && Math.abs(c - current) < Math.abs(best - current)) best = c;
  }
  return best;
}
