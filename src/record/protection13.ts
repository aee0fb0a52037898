/**
 * DTLS 1.3 record protection (RFC 9147 §4): one keyed instance per epoch
 * and direction, sealing a DTLSInnerPlaintext (content || real type ||
 * padding) under the suite's AEAD with
 *
 *     nonce = iv XOR the 64-bit record sequence number (the epoch is not in it)
 *     additional data = the unified header, its sequence number in the clear
 *
 * and then encrypting the header's sequence number bits with a mask made
 * from the first 16 bytes of the ciphertext (§4.2.3). Opening undoes the
 * mask, rebuilds the full sequence number from its low bits (§4.2.2) and
 * authenticates; a record that fails anywhere is null, never a throw.
 *
 * @module
 */

import type { Aead, CryptoProvider } from "../crypto/provider.ts";
import { MAX_PLAINTEXT_LENGTH } from "./header.ts";
import {
  encodeUnifiedHeader,
  reconstructSequenceNumber,
  type UnifiedRecord,
} from "./unified_header.ts";

/** The bytes of ciphertext the record number mask is made from, and the least a record has. */
const MASK_SAMPLE = 16;

/** What a record said once opened. */
export interface OpenedRecord13 {
  /** The real content type, from inside the encryption. */
  readonly type: number;
  /** The content. */
  readonly content: Uint8Array;
  /** The full record sequence number. */
  readonly seq: number;
}

/** How a record's header is written. */
export interface HeaderShape {
  /** Bytes of sequence number in the header: 1 or 2. */
  readonly seqLength: 1 | 2;
  /** Whether the header carries the length (else the record runs to the datagram's end). */
  readonly withLength: boolean;
  /** The peer's Connection ID to carry, if any. */
  readonly cid?: Uint8Array;
}

/** Seals and opens the records of one DTLS 1.3 epoch in one direction. */
export class Dtls13Protection {
  readonly #aead: Aead;
  readonly #iv: Uint8Array;
  readonly #masker: (sample: Uint8Array) => Uint8Array;

  constructor(
    provider: CryptoProvider,
    aead: Aead,
    keys: { readonly iv: Uint8Array; readonly snKey: Uint8Array },
    snCipher: "aes" | "chacha20",
  ) {
    if (keys.iv.length !== 12) {
      throw new TypeError("Cannot protect DTLS 1.3 records: IV not 12 bytes");
    }
    this.#aead = aead;
    this.#iv = keys.iv;
    this.#masker = provider.recordNumberMasker(snCipher, keys.snKey);
  }

  /** The nonce of record `seq`: the IV XOR the sequence number as 64 bits (RFC 8446 §5.3). */
  #nonce(seq: number): Uint8Array {
    const nonce = this.#iv.slice();
    const high = Math.floor(seq / 0x100000000);
    const low = seq >>> 0;
    nonce[6]! ^= (high >>> 8) & 0xff;
    nonce[7]! ^= high & 0xff;
    nonce[8]! ^= low >>> 24;
    nonce[9]! ^= (low >>> 16) & 0xff;
    nonce[10]! ^= (low >>> 8) & 0xff;
    nonce[11]! ^= low & 0xff;
    return nonce;
  }

  /** The record number mask of a record whose ciphertext starts with `sample`. */
  #mask(ciphertext: Uint8Array): Uint8Array {
    return this.#masker(ciphertext.subarray(0, MASK_SAMPLE));
  }

  /**
   * The record of `content` of `type` as epoch `epoch`'s record `seq`: the
   * unified header (its sequence number encrypted) and the ciphertext. Short
   * content is padded so that the ciphertext makes a mask sample.
   */
  seal(
    type: number,
    content: Uint8Array,
    epoch: number,
    seq: number,
    shape: HeaderShape,
  ): Uint8Array {
    if (content.length > MAX_PLAINTEXT_LENGTH) {
      throw new RangeError(`Cannot protect a record of ${content.length} bytes: over 2^14`);
    }
    const tag = this.#aead.tagLength;
    const innerLength = Math.max(content.length + 1, MASK_SAMPLE - tag);
    const inner = new Uint8Array(innerLength);
    inner.set(content);
    inner[content.length] = type;
    const header = encodeUnifiedHeader({
      epoch,
      seq,
      seqLength: shape.seqLength,
      ...(shape.cid === undefined ? {} : { cid: shape.cid }),
      ...(shape.withLength ? { length: innerLength + tag } : {}),
    });
    const ciphertext = this.#aead.seal(this.#nonce(seq), header, inner);
    inner.fill(0);
    const mask = this.#mask(ciphertext);
    const seqAt = 1 + (shape.cid?.length ?? 0);
    for (let i = 0; i < shape.seqLength; i++) header[seqAt + i]! ^= mask[i]!;
    const out = new Uint8Array(header.length + ciphertext.length);
    out.set(header);
    out.set(ciphertext, header.length);
    return out;
  }

  /**
   * The record's content, type and full sequence number, or null when it
   * does not open: too short to unmask, or it does not authenticate, or no
   * content type inside. `expected`: the next sequence number expected in
   * this epoch (one past the highest received), which the low bits are
   * read against.
   */
  open(record: UnifiedRecord, expected: number): OpenedRecord13 | null {
    const encrypted = record.encrypted;
    if (encrypted.length < MASK_SAMPLE || encrypted.length < this.#aead.tagLength) return null;
    const mask = this.#mask(encrypted);
    const header = record.header.slice();
    let low = 0;
    for (let i = 0; i < record.seqLength; i++) {
      const byte = header[record.seqOffset + i]! ^ mask[i]!;
      header[record.seqOffset + i] = byte;
      low = (low << 8) | byte;
    }
    const seq = reconstructSequenceNumber(low, record.seqLength === 2 ? 16 : 8, expected);
    if (seq >= 2 ** 48) return null;
    const inner = this.#aead.open(this.#nonce(seq), header, encrypted);
    if (inner === null) return null;
    let at = inner.length - 1;
    while (at >= 0 && inner[at] === 0) at--;
    if (at < 0 || at > MAX_PLAINTEXT_LENGTH) return null;
    return { type: inner[at]!, content: inner.subarray(0, at), seq };
  }
}
