/**
 * Record protection: one keyed instance per epoch and direction (the
 * `halfConn` of Go's crypto/tls). It turns a record's plaintext into its
 * DTLSCiphertext.fragment and back, building nonces, additional data and
 * MAC input from the record header itself (RFC 6347 §4.1.2.1).
 *
 * Failures on the receive side are noise (RFC 6347 §4.1.2.7): `unprotect`
 * answers null and never throws. Failures on the send side are programming
 * errors and throw.
 *
 * @module
 */

import { allocateBytes } from "../codec/byte_pool.ts";
import { writeU48 } from "../codec/writer.ts";
import {
  ContentType,
  encodeRecord,
  MAX_PLAINTEXT_LENGTH,
  RECORD_HEADER_LENGTH,
  writeRecordHeader,
} from "./header.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import type {
  Aead,
  CbcCipher,
  CryptoProvider,
  HashName,
  Mac,
  RandomSource,
} from "../crypto/provider.ts";
import type { CipherSuite } from "./suites.ts";

/** Per-epoch, per-direction key material from the key block (RFC 5246 §6.3). */
export interface RecordKeys {
  /** client/server_write_key. */
  key: Uint8Array;
  /** client/server_write_IV: the AEAD salt (4 bytes) or ChaCha IV (12 bytes); empty for CBC. */
  fixedIv: Uint8Array;
  /** client/server_write_MAC_key; empty for AEAD suites. */
  macKey: Uint8Array;
}

/** Protects and unprotects the records of one epoch in one direction. */
export interface RecordProtection {
  /** Maximum bytes protect() adds to a plaintext (a Connection ID's header bytes included). */
  readonly overhead: number;
  /**
   * The Connection ID its records carry (RFC 9146), if any: they are
   * tls12_cid records, and what `unprotect` returns is their inner plaintext.
   */
  readonly connectionId?: Uint8Array | undefined;
  /** Returns the DTLSCiphertext.fragment for a record with this header. */
  protect(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    plaintext: Uint8Array,
  ): Uint8Array;
  /**
   * Returns the whole record: the DTLS record header (RFC 6347 §4.1) and
   * the fragment {@link protect} would return, built in one new array so
   * that nothing is copied twice on the send path.
   */
  protectRecord(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    plaintext: Uint8Array,
  ): Uint8Array;
  /** Returns the plaintext or null if the record does not authenticate / is malformed (never throws). */
  unprotect(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    fragment: Uint8Array,
  ): Uint8Array | null;
}

/** DTLSCiphertext.length MUST NOT exceed 2^14 + 2048 (RFC 5246 §6.2.3). */
const MAX_CIPHERTEXT = 16384 + 2048;

const SEQ_LIMIT = 2 ** 48;

/** Bytes of AAD / MAC header: epoch(2) || seq(6) || type(1) || version(2) || length(2). */
const HEADER_LENGTH = 13;

/** The AES block, which is also the length of a CBC record IV (RFC 5246 §6.2.3.2). */
const BLOCK = 16;

/** Whether the header fields are in range for a wire record. */
function validHeader(type: number, version: number, epoch: number, seq: number): boolean {
  return Number.isInteger(type) && type >= 0 && type <= 0xff &&
    Number.isInteger(version) && version >= 0 && version <= 0xffff &&
    Number.isInteger(epoch) && epoch >= 0 && epoch <= 0xffff &&
    Number.isInteger(seq) && seq >= 0 && seq < SEQ_LIMIT;
}

/** Throws unless a record with this header and plaintext may be sent. */
function checkSend(
  type: number,
  version: number,
  epoch: number,
  seq: number,
  plaintext: Uint8Array,
): void {
  if (!validHeader(type, version, epoch, seq)) {
    throw new RangeError(
      `Cannot protect record: header out of range (type ${type}, version ${version}, epoch ${epoch}, seq ${seq})`,
    );
  }
  if (plaintext.length > MAX_PLAINTEXT_LENGTH) {
    throw new RangeError(
      `Cannot protect record: plaintext of ${plaintext.length} bytes exceeds 2^14`,
    );
  }
}

/**
 * Fills `out` with epoch(2) || seq(6) || type(1) || version(2) || length(2):
 * the AEAD additional data (RFC 5246 §6.2.3.3 with RFC 6347 §4.1.2.1's
 * "epoch + sequence_number" in place of seq_num) and also the MAC prefix of
 * the CBC suites (RFC 5246 §6.2.3.1, same substitution).
 */
function writeHeader(
  out: Uint8Array,
  type: number,
  version: number,
  epoch: number,
  seq: number,
  length: number,
): void {
  out[0] = epoch >>> 8;
  out[1] = epoch;
  writeU48(out, 2, seq);
  out[8] = type;
  out[9] = version >>> 8;
  out[10] = version;
  out[11] = length >>> 8;
  out[12] = length;
}

/**
 * A new record of `fragmentLength` fragment bytes with its header filled in;
 * the caller has validated the fields (checkSend) and writes the fragment.
 * It comes from the byte pool: a record is sent and dropped, and a flight
 * kept for retransmission is a copy (Connection's packing).
 */
function newRecord(
  type: number,
  version: number,
  epoch: number,
  seq: number,
  fragmentLength: number,
): Uint8Array {
  const out = allocateBytes(RECORD_HEADER_LENGTH + fragmentLength);
  writeRecordHeader(out, 0, type, version, epoch, seq, fragmentLength);
  return out;
}

// The nonce and AAD (or MAC header) of the record being protected, shared by
// every connection: each record is sealed or opened to the end without
// yielding, and an idle connection keeps no scratch (a typed array costs
// about 200 bytes of heap before its data). The AEADs copy or consume them
// before returning.
const NONCE = new Uint8Array(12);
const AAD = new Uint8Array(HEADER_LENGTH);

/** The big-endian 32-bit word at `at`. */
function word(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function putWord(b: Uint8Array, at: number, w: number): void {
  b[at] = w >>> 24;
  b[at + 1] = w >>> 16;
  b[at + 2] = w >>> 8;
  b[at + 3] = w;
}

/**
 * The AEAD suites. AES-GCM (RFC 5288 §3) and AES-CCM (RFC 6655 §3): nonce =
 * salt(4) || nonce_explicit(8); we send epoch || seq as nonce_explicit,
 * which is unique per key, as most implementations do; on receipt the
 * explicit part is taken from the wire as those RFCs specify; fragment =
 * nonce_explicit || ciphertext || tag. ChaCha20-Poly1305 (RFC 7905 §2): no
 * explicit nonce; the 64-bit sequence number (for DTLS, epoch || seq) is
 * left-padded with four zero bytes and XORed into the 12-byte IV; fragment
 * = ciphertext || tag.
 *
 * With a Connection ID (RFC 9146 §5) the record's header has the type
 * tls12_cid and the CID, what is encrypted is the DTLSInnerPlaintext
 * (content || real type; we send no padding) and the additional data is
 * RFC 9146's. `unprotect` then returns the inner plaintext: the caller
 * takes the real type from it (see `innerContent`).
 */
class AeadProtection implements RecordProtection {
  readonly overhead: number;
  readonly connectionId: Uint8Array | undefined;
  readonly #aead: Aead;
  /** Bytes of nonce_explicit in each fragment: 8 (GCM, CCM) or 0 (ChaCha20). */
  readonly #explicit: number;
  /** The salt (explicit nonces), or the 12-byte IV: numbers rather than a typed array. */
  readonly #iv0: number;
  readonly #iv1: number;
  readonly #iv2: number;

  constructor(aead: Aead, fixedIv: Uint8Array, explicit: boolean, cid: Uint8Array | undefined) {
    this.#aead = aead;
    this.#explicit = explicit ? 8 : 0;
    this.#iv0 = word(fixedIv, 0);
    this.#iv1 = explicit ? 0 : word(fixedIv, 4);
    this.#iv2 = explicit ? 0 : word(fixedIv, 8);
    this.connectionId = cid;
    this.overhead = this.#explicit + aead.tagLength + (cid === undefined ? 0 : cid.length + 1);
  }

  /**
   * The nonce of the record epoch || seq; for a record received with an
   * explicit nonce, that of its fragment's first 8 bytes.
   */
  #setNonce(epoch: number, seq: number, received?: Uint8Array): void {
    const high = ((epoch << 16) | Math.floor(seq / 0x100000000)) >>> 0;
    const low = seq >>> 0;
    if (this.#explicit === 0) {
      putWord(NONCE, 0, this.#iv0);
      putWord(NONCE, 4, this.#iv1 ^ high);
      putWord(NONCE, 8, this.#iv2 ^ low);
      return;
    }
    putWord(NONCE, 0, this.#iv0);
    if (received === undefined) {
      putWord(NONCE, 4, high);
      putWord(NONCE, 8, low);
    } else {
      for (let i = 0; i < 8; i++) NONCE[4 + i] = received[i]!;
    }
  }

  protect(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    plaintext: Uint8Array,
  ): Uint8Array {
    const record = this.protectRecord(type, version, epoch, seq, plaintext);
    return record.slice(RECORD_HEADER_LENGTH + (this.connectionId?.length ?? 0));
  }

  protectRecord(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    plaintext: Uint8Array,
  ): Uint8Array {
    checkSend(type, version, epoch, seq, plaintext);
    const aead = this.#aead;
    const explicit = this.#explicit;
    const cid = this.connectionId;
    this.#setNonce(epoch, seq);
    if (cid === undefined) {
      writeHeader(AAD, type, version, epoch, seq, plaintext.length);
      const out = newRecord(
        type,
        version,
        epoch,
        seq,
        explicit + plaintext.length + aead.tagLength,
      );
      // nonce_explicit is epoch || seq: the header's bytes 3 to 10.
      if (explicit > 0) out.copyWithin(RECORD_HEADER_LENGTH, 3, 11);
      aead.sealInto(NONCE, AAD, plaintext, out, RECORD_HEADER_LENGTH + explicit);
      return out;
    }
    const innerLength = plaintext.length + 1;
    const inner = allocateBytes(innerLength);
    inner.set(plaintext);
    inner[plaintext.length] = type;
    const aad = writeCidAad(cid, version, epoch, seq, innerLength);
    const headerLength = RECORD_HEADER_LENGTH + cid.length;
    const fragmentLength = explicit + innerLength + aead.tagLength;
    const out = allocateBytes(headerLength + fragmentLength);
    writeRecordHeader(out, 0, ContentType.Tls12Cid, version, epoch, seq, fragmentLength);
    // RFC 9146 §4: the CID goes between the sequence number and the length.
    out.copyWithin(headerLength - 2, 11, 13);
    out.set(cid, 11);
    if (explicit > 0) out.copyWithin(headerLength, 3, 11);
    aead.sealInto(NONCE, aad, inner, out, headerLength + explicit);
    inner.fill(0);
    return out;
  }

  unprotect(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    fragment: Uint8Array,
  ): Uint8Array | null {
    const explicit = this.#explicit;
    const cid = this.connectionId;
    const length = fragment.length - explicit - this.#aead.tagLength;
    const limit = cid === undefined ? MAX_PLAINTEXT_LENGTH : MAX_INNER_PLAINTEXT_LENGTH;
    if (length < 0 || length > limit || !validHeader(type, version, epoch, seq)) return null;
    this.#setNonce(epoch, seq, explicit > 0 ? fragment : undefined);
    const sealed = explicit > 0 ? fragment.subarray(explicit) : fragment;
    if (cid === undefined) {
      writeHeader(AAD, type, version, epoch, seq, length);
      return this.#aead.open(NONCE, AAD, sealed);
    }
    if (type !== ContentType.Tls12Cid) return null;
    return this.#aead.open(NONCE, writeCidAad(cid, version, epoch, seq, length), sealed);
  }
}

/**
 * The longest DTLSInnerPlaintext accepted (RFC 9146 §4): content of at most
 * 2^14 bytes, its type, and padding, which some peers add in blocks of 16.
 */
const MAX_INNER_PLAINTEXT_LENGTH = MAX_PLAINTEXT_LENGTH + 256;

/** RFC 9146 §5's additional data, for CIDs up to the 255 bytes the extension allows. */
const CID_AAD = new Uint8Array(23 + 255);

/**
 * Fills {@link CID_AAD} with seq_num_placeholder (8 x 0xff) || tls12_cid ||
 * cid_length || tls12_cid || version || epoch || sequence_number || cid ||
 * length_of_DTLSInnerPlaintext (RFC 9146 §5) and returns the part in use.
 */
function writeCidAad(
  cid: Uint8Array,
  version: number,
  epoch: number,
  seq: number,
  innerLength: number,
): Uint8Array {
  const n = cid.length;
  CID_AAD.fill(0xff, 0, 8);
  CID_AAD[8] = ContentType.Tls12Cid;
  CID_AAD[9] = n;
  CID_AAD[10] = ContentType.Tls12Cid;
  CID_AAD[11] = version >>> 8;
  CID_AAD[12] = version;
  CID_AAD[13] = epoch >>> 8;
  CID_AAD[14] = epoch;
  writeU48(CID_AAD, 15, seq);
  CID_AAD.set(cid, 21);
  CID_AAD[21 + n] = innerLength >>> 8;
  CID_AAD[22 + n] = innerLength;
  return CID_AAD.subarray(0, 23 + n);
}

/**
 * The content and real type of a DTLSInnerPlaintext (RFC 9146 §4): the
 * last non-zero byte is the type, zeros after it are padding. Undefined
 * when there is no such byte or the content is too long.
 */
export function innerContent(
  inner: Uint8Array,
): { readonly content: Uint8Array; readonly type: number } | undefined {
  let i = inner.length - 1;
  while (i >= 0 && inner[i] === 0) i--;
  if (i < 0 || i > MAX_PLAINTEXT_LENGTH) return undefined;
  return { content: inner.subarray(0, i), type: inner[i]! };
}

/** Block size and length-field size of the MAC hash's Merkle-Damgard padding. */
const HASH_SHAPE: Record<HashName, { block: number; lengthField: number }> = {
  sha256: { block: 64, lengthField: 8 },
  sha384: { block: 128, lengthField: 16 },
};

/**
 * AES-CBC with HMAC (RFC 5246 §6.2.3.2 and §6.2.3.1, DTLS per RFC 6347
 * §4.1.2.1): a random 16-byte IV per record, TLS padding (every pad byte,
 * and the length byte, equal to the pad length), and either MAC-then-
 * encrypt (the default) or encrypt-then-MAC (RFC 7366).
 */
class CbcProtection implements RecordProtection {
  readonly overhead: number;
  readonly #cbc: CbcCipher;
  readonly #mac: Mac;
  readonly #macHash: HashName;
  readonly #macLength: number;
  readonly #etm: boolean;
  readonly #random: RandomSource;
  readonly #provider: CryptoProvider;
  /** Input for the dummy hash that evens out MAC timing (see #macThenDecrypt). */
  readonly #dummy: Uint8Array;

  constructor(
    suite: CipherSuite,
    macHash: HashName,
    macLength: number,
    keys: RecordKeys,
    provider: CryptoProvider,
    options: { encryptThenMac: boolean; random: RandomSource },
  ) {
    this.#cbc = provider.cbc(keys.key);
    this.#mac = provider.hmac(macHash, keys.macKey);
    if (this.#mac.length !== macLength) {
      throw new TypeError(`Cannot create record protection: ${suite.name} MAC length mismatch`);
    }
    this.#macHash = macHash;
    this.#macLength = macLength;
    this.#etm = options.encryptThenMac;
    this.#random = options.random;
    this.#provider = provider;
    // IV, MAC and at most one block of padding (we always pad minimally).
    this.overhead = BLOCK + macLength + BLOCK;
    // Enough for the largest number of dummy compressions: 256 bytes of
    // padding span at most 256 / block + 1 blocks, plus the one always run.
    const { block } = HASH_SHAPE[macHash];
    this.#dummy = new Uint8Array((Math.ceil(256 / block) + 3) * block);
  }

  #iv(): Uint8Array {
    const iv = this.#random(BLOCK);
    if (iv.length !== BLOCK) {
      throw new TypeError("Cannot protect record: random source returned the wrong length");
    }
    return iv;
  }

  protect(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    plaintext: Uint8Array,
  ): Uint8Array {
    checkSend(type, version, epoch, seq, plaintext);
    const macLength = this.#macLength;
    const n = plaintext.length;
    // RFC 5246 §6.2.3.2: padding makes the encrypted part a whole number of
    // blocks; we use the minimum (pad length 0..15).
    const body = this.#etm ? n : n + macLength;
    const padLength = BLOCK - 1 - (body % BLOCK);
    const block = new Uint8Array(body + padLength + 1);
    block.set(plaintext);
    if (!this.#etm) {
      // MAC-then-encrypt: MAC(MAC_write_key, epoch + seq_num + type +
      // version + length + content), with length = the plaintext length.
      writeHeader(AAD, type, version, epoch, seq, n);
      block.set(this.#mac.compute(AAD, plaintext), n);
    }
    block.fill(padLength, body);
    const iv = this.#iv();
    const ciphertext = this.#cbc.encrypt(iv, block);
    const out = new Uint8Array(BLOCK + ciphertext.length + (this.#etm ? macLength : 0));
    out.set(iv);
    out.set(ciphertext, BLOCK);
    if (this.#etm) {
      // RFC 7366 §3: MAC(MAC_write_key, seq_num + type + version + length +
      // IV + ENC(content + padding + padding_length)), length = |IV + ENC(...)|.
      const ivAndCiphertext = out.subarray(0, BLOCK + ciphertext.length);
      writeHeader(AAD, type, version, epoch, seq, ivAndCiphertext.length);
      out.set(this.#mac.compute(AAD, ivAndCiphertext), ivAndCiphertext.length);
    }
    return out;
  }

  protectRecord(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    plaintext: Uint8Array,
  ): Uint8Array {
    return encodeRecord(
      type,
      version,
      epoch,
      seq,
      this.protect(type, version, epoch, seq, plaintext),
    );
  }

  unprotect(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    fragment: Uint8Array,
  ): Uint8Array | null {
    if (fragment.length > MAX_CIPHERTEXT || !validHeader(type, version, epoch, seq)) return null;
    return this.#etm
      ? this.#verifyThenDecrypt(type, version, epoch, seq, fragment)
      : this.#macThenDecrypt(type, version, epoch, seq, fragment);
  }

  /** RFC 7366 §3: check the MAC over IV || ciphertext first, then decrypt. */
  #verifyThenDecrypt(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    fragment: Uint8Array,
  ): Uint8Array | null {
    const macLength = this.#macLength;
    const encrypted = fragment.length - macLength;
    // IV plus at least one block (the padding length byte needs one).
    if (encrypted < 2 * BLOCK || encrypted % BLOCK !== 0) return null;
    const ivAndCiphertext = fragment.subarray(0, encrypted);
    writeHeader(AAD, type, version, epoch, seq, encrypted);
    const expected = this.#mac.compute(AAD, ivAndCiphertext);
    if (!constantTimeEqual(expected, fragment.subarray(encrypted))) return null;
    // Authenticated: from here on, padding errors reveal nothing to an
    // attacker that the MAC had not already settled.
    const plaintext = this.#cbc.decrypt(
      fragment.subarray(0, BLOCK),
      fragment.subarray(BLOCK, encrypted),
    );
    const n = plaintext.length;
    const padLength = plaintext[n - 1]!;
    if (padLength + 1 > n) return null;
    for (let i = n - 1 - padLength; i < n; i++) if (plaintext[i] !== padLength) return null;
    const length = n - padLength - 1;
    return length > MAX_PLAINTEXT_LENGTH ? null : plaintext.subarray(0, length);
  }

  /**
   * MAC-then-encrypt receive (RFC 5246 §6.2.3.2), written so that a bad
   * padding and a bad MAC cost the same work and give the same answer (the
   * padding oracle of Vaudenay and the Lucky Thirteen timing attack):
   *
   * - the padding is checked over a fixed 256-byte window with masks, no
   *   early exit;
   * - on bad padding the MAC is computed as if the pad were empty, as
   *   RFC 5246 §6.2.3.2 recommends, and the record still fails;
   * - the hash compression calls skipped because the MAC covered less data
   *   (long padding) are made up by hashing dummy bytes, so the total number
   *   of compression calls depends only on the public record length.
   *
   * JS gives no hard timing guarantees (JIT, GC), and the MAC is read at a
   * secret-dependent offset within the last 256 + MAC bytes; this removes
   * the large, measurable differences, which is what the attacks exploit.
   */
  #macThenDecrypt(
    type: number,
    version: number,
    epoch: number,
    seq: number,
    fragment: Uint8Array,
  ): Uint8Array | null {
    const macLength = this.#macLength;
    const encrypted = fragment.length - BLOCK;
    // The encrypted part holds at least the MAC and the pad length byte.
    const minimum = Math.ceil((macLength + 1) / BLOCK) * BLOCK;
    if (encrypted < minimum || encrypted % BLOCK !== 0) return null;
    const plaintext = this.#cbc.decrypt(fragment.subarray(0, BLOCK), fragment.subarray(BLOCK));
    const n = plaintext.length;
    const padLength = plaintext[n - 1]!;

    // bad != 0 iff the padding is invalid: too long for the record, or
    // some byte of it differs from padLength.
    let bad = (n - (padLength + 1 + macLength)) >>> 31;
    const window = Math.min(256, n);
    for (let i = 0; i < window; i++) {
      // inPad is all ones for i <= padLength, else zero.
      const inPad = (i - padLength - 1) >> 31;
      bad |= inPad & (plaintext[n - 1 - i]! ^ padLength);
    }
    // goodMask: all ones iff bad == 0 (bad is in 0..255 here).
    const goodMask = -((bad - 1) >>> 31);
    const effectivePad = padLength & goodMask;
    const length = n - effectivePad - 1 - macLength;

    writeHeader(AAD, type, version, epoch, seq, length);
    const expected = this.#mac.compute(AAD, plaintext.subarray(0, length));
    this.#evenOutHashing(length, n - 1 - macLength);
    const macOk = constantTimeEqual(expected, plaintext.subarray(length, length + macLength));
    if (!macOk || goodMask === 0 || length > MAX_PLAINTEXT_LENGTH) return null;
    return plaintext.subarray(0, length);
  }

  /**
   * Runs the hash compression function as many times as the MAC would have
   * needed for the longest possible content minus the times it did need,
   * plus one, so that the total is a function of the record length only.
   */
  #evenOutHashing(length: number, maxLength: number): void {
    const { block, lengthField } = HASH_SHAPE[this.#macHash];
    // Compression calls of the inner hash after its key block: HEADER_LENGTH
    // + content bytes, then 0x80, zeros and the length field.
    const calls = (m: number) => Math.floor((HEADER_LENGTH + m + lengthField) / block) + 1;
    const extra = calls(maxLength) - calls(length);
    // A message of (k * block - lengthField - 1) bytes takes exactly k calls.
    const dummyLength = (extra + 1) * block - lengthField - 1;
    this.#provider.hash(this.#macHash, this.#dummy.subarray(0, dummyLength));
  }
}

/**
 * Builds the record protection of one epoch and direction for `suite` from
 * its key block slice. Throws a `TypeError` when a key has the wrong length
 * (a programming error in the key schedule).
 *
 * `options.encryptThenMac` applies to CBC suites only (RFC 7366 §3: it is
 * ignored for AEAD suites). `options.random` supplies CBC record IVs.
 */
export function createProtection(
  suite: CipherSuite,
  keys: RecordKeys,
  provider: CryptoProvider,
  options: {
    encryptThenMac: boolean;
    random: RandomSource;
    /**
     * AEAD suites: the Connection ID records carry (RFC 9146): the peer's
     * for records we send, ours for records we read; none or empty: none.
     */
    connectionId?: Uint8Array | undefined;
  },
): RecordProtection {
  if (keys.key.length !== suite.keyLength) {
    throw new TypeError(
      `Cannot create record protection: ${suite.name} key of ${keys.key.length} bytes`,
    );
  }
  if (keys.fixedIv.length !== suite.fixedIvLength) {
    throw new TypeError(
      `Cannot create record protection: ${suite.name} IV of ${keys.fixedIv.length} bytes`,
    );
  }
  if (keys.macKey.length !== suite.macKeyLength) {
    throw new TypeError(
      `Cannot create record protection: ${suite.name} MAC key of ${keys.macKey.length} bytes`,
    );
  }
  const cipher = suite.cipher;
  if (cipher.kind === "cbc") {
    if (options.connectionId !== undefined && options.connectionId.length > 0) {
      throw new TypeError(`Cannot use a Connection ID with ${suite.name}: AEAD suites only`);
    }
    return new CbcProtection(suite, cipher.macHash, cipher.macLength, keys, provider, options);
  }
  const aead = provider.aead(cipher.aead, keys.key);
  if (cipher.explicitNonce && keys.fixedIv.length !== 4) {
    throw new TypeError(`Cannot create record protection: ${suite.name} salt must be 4 bytes`);
  }
  if (!cipher.explicitNonce && keys.fixedIv.length !== 12) {
    throw new TypeError(`Cannot create record protection: ${suite.name} IV must be 12 bytes`);
  }
  const cid = options.connectionId === undefined || options.connectionId.length === 0
    ? undefined
    : options.connectionId;
  return new AeadProtection(aead, keys.fixedIv, cipher.explicitNonce, cid);
}

/**
 * Epoch 0 (RFC 6347 §4.1: the initial, null cipher state): the fragment is
 * the plaintext. `protect` returns the plaintext itself; `unprotect` returns
 * the fragment, or null when it exceeds 2^14 bytes (RFC 5246 §6.2.1).
 */
export const NULL_PROTECTION: RecordProtection = {
  overhead: 0,
  protect(type, version, epoch, seq, plaintext) {
    checkSend(type, version, epoch, seq, plaintext);
    return plaintext;
  },
  protectRecord(type, version, epoch, seq, plaintext) {
    checkSend(type, version, epoch, seq, plaintext);
    return encodeRecord(type, version, epoch, seq, plaintext);
  },
  unprotect(_type, _version, _epoch, _seq, fragment) {
    return fragment.length > MAX_PLAINTEXT_LENGTH ? null : fragment;
  },
};
