/**
 * The record layer of one association, one object per direction (as Go's
 * crypto/tls `halfConn`): a {@link ReadHalf} opens records, a
 * {@link WriteHalf} seals them. Each keeps its epochs, their protection and
 * its sequence numbers; the read half also keeps the replay windows, the
 * keys waiting for the peer's ChangeCipherSpec and the records of the next
 * epoch that came before it. What a record means (handshake, alert, data)
 * is the connection's business, not this module's.
 *
 * Anti-replay (RFC 6347 §4.1.2.6) is the sliding window of IPsec (RFC 4303
 * §3.4.3), {@link ReplayWindow}; epoch 0, which has none, keeps the last
 * record numbers seen ({@link RecentSequences}) to tell network copies.
 *
 * @module
 */

import { ContentType, DTLS_1_0, DTLS_1_2, type RecordView } from "./header.ts";
import { innerContent, NULL_PROTECTION, type RecordProtection } from "./protection.ts";
import { BUFFER_OVERHEAD, type MemoryAccount, NO_ACCOUNT } from "../memory/budget.ts";

/** Why {@link ReadHalf.open} gave no plaintext; `held` means kept for its epoch. */
export type OpenFailure =
  | "version"
  | "epoch"
  | "buffer_full"
  | "replay"
  | "bad_mac"
  | "held"
  /** It authenticated, but its inner plaintext (RFC 9146) has no content type. */
  | "malformed";

/** Records of the next epoch held while its ChangeCipherSpec is awaited (reordering). */
const MAX_EARLY_RECORDS = 4;

/** The early records of a read half that holds none: shared, never written to. */
const NONE_HELD: RecordView[] = Object.freeze([]) as unknown as RecordView[];

/**
 * The last sequence number we write in an epoch is 2^48 - 2: RFC 6347 §4.1
 * forbids wrapping, so a connection that has used them all closes instead.
 */
const MAX_WRITE_SEQ = 2 ** 48 - 2;

/** Thrown when an epoch's sequence numbers are used up: the connection must close. */
export class SequenceExhausted extends Error {
  constructor(epoch: number) {
    super(`Cannot send: sequence numbers of epoch ${epoch} exhausted`);
    this.name = "SequenceExhausted";
  }
}

interface ReadEpoch {
  readonly protection: RecordProtection;
  readonly replay: ReplayWindow;
}

/** The receiving direction: epochs, replay windows, pending keys, early records. */
export class ReadHalf {
  // Both epochs' slots from the start (DTLS 1.2 has no third): an array
  // that grows by one index keeps room for 16 more for the connection's life.
  #epochs: (ReadEpoch | undefined)[] = [
    { protection: NULL_PROTECTION, replay: new ReplayWindow() },
    undefined,
  ];
  #epoch = 0;
  #pending: RecordProtection | undefined;
  /** Records of the next epoch that came before its ChangeCipherSpec, copied and charged. */
  #early: RecordView[] = NONE_HELD;
  /** Held records already given to {@link peekHeldHandshakes}. */
  #peeked = 0;
  /** Whether records of the next epoch may still be held (only while handshaking). */
  #holding = true;
  /** What the held records are charged to (nothing, once settled). */
  #memory: MemoryAccount;
  /** Epoch-0 record numbers up to this one came before this connection (the verified ClientHello). */
  #floor0 = -1;
  /** The numbers of the last epoch-0 handshake records opened (made when needed, dropped once settled). */
  #recent0: RecentSequences | undefined;
  /**
   * Whether the record last opened is a copy the network made: an epoch-0
   * handshake record numbered as one already opened, or as one from before
   * this connection. (Epoch 0 has no replay window, so copies get through.)
   */
  isCopy = false;
  /**
   * The content type of the record last opened: its header's, or for a
   * record with a Connection ID the real one from inside (RFC 9146 §4).
   */
  contentType = 0;
  /**
   * Whether the record last opened is the newest of its epoch yet: the
   * only kind that may move a peer to a new address (RFC 9146 §6).
   */
  isNewest = false;

  constructor(memory: MemoryAccount) {
    this.#memory = memory;
  }

  /** The epoch records are read in now. */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Notes an epoch-0 record handled before this connection existed (the
   * ClientHello the endpoint verified): a copy of it is not new.
   */
  markUsed(seq: number): void {
    this.#floor0 = Math.max(this.#floor0, seq);
  }

  /**
   * The plaintext of `record`, or why there is none. A record of the next
   * epoch is copied and held (`held`) while there is room; it comes back
   * from {@link activatePending}. The replay window moves only for a record
   * that authenticated (RFC 6347 §4.1.2.6).
   */
  open(record: RecordView): Uint8Array | OpenFailure {
    const validVersion = record.version === DTLS_1_2 ||
      (record.version === DTLS_1_0 && record.epoch === 0);
    if (!validVersion) return "version";
    const epoch = this.#epochs[record.epoch];
    if (epoch === undefined) return this.#hold(record);
    // Epoch 0 has no replay window (RFC 6347 §4.1.2.6 makes one optional):
    // anyone can send epoch-0 records, so a window there could be pushed
    // past the peer's own, or filled with its next numbers, by noise.
    // Copies are harmless to the handshake; `isCopy` tells them apart.
    const replayChecked = record.epoch > 0;
    if (replayChecked && !epoch.replay.isFresh(record.seq)) return "replay";
    const opened = epoch.protection.unprotect(
      record.type,
      record.version,
      record.epoch,
      record.seq,
      record.fragment,
    );
    if (opened === null) return "bad_mac";
    let plaintext = opened;
    this.contentType = record.type;
    if (epoch.protection.connectionId !== undefined) {
      const inner = innerContent(opened);
      if (inner === undefined) return "malformed";
      plaintext = inner.content;
      this.contentType = inner.type;
    }
    this.isNewest = replayChecked && record.seq > epoch.replay.highest;
    if (replayChecked) epoch.replay.accept(record.seq);
    // Only while epoch 0 is read: later its records are stale and dropped.
    const handshake0 = record.epoch === 0 && this.#epoch === 0 &&
      record.type === ContentType.Handshake;
    this.isCopy = handshake0 &&
      (record.seq <= this.#floor0 || this.#recent0?.has(record.seq) === true);
    if (handshake0 && !this.isCopy) (this.#recent0 ??= new RecentSequences()).add(record.seq);
    return plaintext;
  }

  /**
   * RFC 6347 §4.1: records of the next epoch may arrive before its
   * ChangeCipherSpec; keep a few, drop the rest. Only epoch 1 can come early
   * (no renegotiation: there is no epoch 2).
   */
  #hold(record: RecordView): OpenFailure {
    if (
      !this.#holding || record.epoch !== 1 || this.#epoch !== 0 ||
      this.#early.length >= MAX_EARLY_RECORDS ||
      !this.#memory.charge(record.raw.length + BUFFER_OVERHEAD)
    ) {
      return record.epoch > this.#epoch ? "buffer_full" : "epoch";
    }
    // Copied once (the record is a view of the datagram, and the cursor is
    // reused); the fragment is a view of the copy.
    const raw = record.raw.slice();
    if (this.#early === NONE_HELD) this.#early = [];
    this.#early.push({
      type: record.type,
      version: record.version,
      epoch: record.epoch,
      seq: record.seq,
      cid: raw.subarray(11, 11 + record.cid.length),
      fragment: raw.subarray(raw.length - record.fragment.length),
      raw,
    });
    return "held";
  }

  /**
   * The plaintexts of the held handshake records of the next epoch that
   * open with its pending keys and were not peeked at before, without
   * reading them (they are opened again, for real, when the epoch is). For
   * a driver that must know what the peer sent after its ChangeCipherSpec
   * before taking it.
   */
  peekHeldHandshakes(): Uint8Array[] {
    const pending = this.#pending;
    if (pending === undefined) return [];
    const out: Uint8Array[] = [];
    // Each held record is opened here once at most, whatever a peer sends
    // to make the driver look again.
    const from = this.#peeked;
    this.#peeked = this.#early.length;
    for (const r of this.#early.slice(from)) {
      const opened = pending.unprotect(r.type, r.version, r.epoch, r.seq, r.fragment);
      if (opened === null) continue;
      const inner = pending.connectionId === undefined
        ? { content: opened, type: r.type }
        : innerContent(opened);
      if (inner?.type === ContentType.Handshake) out.push(inner.content.slice());
    }
    return out;
  }

  /** Keys for the next epoch, used once the peer's ChangeCipherSpec arrives. */
  setPending(protection: RecordProtection): void {
    this.#pending = protection;
  }

  /** Whether keys wait for the peer's ChangeCipherSpec. */
  get hasPending(): boolean {
    return this.#pending !== undefined;
  }

  /**
   * Reads the next epoch from now on (the peer's ChangeCipherSpec came) and
   * gives back the records of it that came early, uncharged, for the caller
   * to open in order.
   */
  activatePending(): RecordView[] {
    if (this.#pending === undefined) throw new Error("no pending read keys");
    this.#epoch++;
    this.#epochs[this.#epoch] = { protection: this.#pending, replay: new ReplayWindow() };
    this.#pending = undefined;
    const early = this.#early;
    this.#early = NONE_HELD;
    this.#peeked = 0;
    for (const record of early) this.#memory.release(record.raw.length + BUFFER_OVERHEAD);
    return early;
  }

  /**
   * The handshake is over (or the connection closed): nothing more is held,
   * what was held is let go, and epoch-0 copies are no longer looked for
   * (epoch-0 records are stale from now on).
   */
  settle(): void {
    this.#holding = false;
    for (const record of this.#early) this.#memory.release(record.raw.length + BUFFER_OVERHEAD);
    this.#early = NONE_HELD;
    this.#peeked = 0;
    this.#recent0 = undefined;
    // Nothing is held from now on: the connection's account can go.
    this.#memory = NO_ACCOUNT;
    // Epoch 0 is over: its records are dropped as of an epoch we no longer read.
    if (this.#epoch > 0) this.#epochs[0] = undefined;
  }
}

/** The sending direction: each epoch's protection and next sequence number. */
export class WriteHalf {
  // Epochs 0 and 1 from the start, as in ReadHalf.
  #protections: (RecordProtection | undefined)[] = [NULL_PROTECTION, undefined];
  #seqs: number[];
  #epoch = 0;

  /** `firstSeq`: the epoch-0 sequence number to start from (the server continues the ClientHello's). */
  constructor(firstSeq = 0) {
    this.#seqs = [firstSeq, 0];
  }

  /** The epoch records are sealed in by default. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Bytes the protection of `epoch` adds to a record (explicit nonce, tag, MAC, padding). */
  overhead(epoch = this.#epoch): number {
    return this.#protections[epoch]?.overhead ?? 0;
  }

  /** Installs the protection of `epoch` (our ChangeCipherSpec switches to it). */
  install(epoch: number, protection: RecordProtection): void {
    this.#protections[epoch] = protection;
    this.#seqs[epoch] ??= 0;
  }

  /** Our ChangeCipherSpec for `epoch` went out: later records use the next epoch. */
  changeCipherSpec(epoch: number): void {
    this.#epoch = Math.max(this.#epoch, epoch + 1);
  }

  /**
   * One record of `type` holding `plaintext`, sealed in `epoch` (the
   * current one by default) under its next sequence number. Throws
   * {@link SequenceExhausted} when the epoch has none left.
   */
  seal(type: number, plaintext: Uint8Array, epoch = this.#epoch): Uint8Array {
    const protection = this.#protections[epoch];
    if (protection === undefined) throw new Error(`no write keys for epoch ${epoch}`);
    const seq = this.#seqs[epoch]!;
    if (!(seq <= MAX_WRITE_SEQ)) throw new SequenceExhausted(epoch);
    this.#seqs[epoch] = seq + 1;
    return protection.protectRecord(type, DTLS_1_2, epoch, seq, plaintext);
  }
}

// ---- anti-replay ---------------------------------------------------------------

/** Records older than this many below the highest one seen are refused. */
const WINDOW = 64;

/** Sequence numbers are uint48 (RFC 6347 §4.1). */
const SEQ_LIMIT = 2 ** 48;

/**
 * A 64-record sliding window over received sequence numbers.
 *
 * RFC 6347 §4.1.2.6: a record is checked with {@link isFresh} before it is
 * decrypted, and the window is updated with {@link accept} only once the
 * record has authenticated, so forged records cannot move the window.
 *
 * Sequence numbers are below 2^48, exact in a JS number; the 64-bit bitmap
 * is kept as two 32-bit words so no BigInt is needed. Bit `i` (word `lo`
 * for i < 32, `hi` above) stands for sequence number `top - i`.
 */
export class ReplayWindow {
  /** Highest sequence number accepted so far; -1 before the first. */
  #top = -1;
  #lo = 0;
  #hi = 0;

  /** The highest sequence number accepted so far; -1 before the first. */
  get highest(): number {
    return this.#top;
  }

  /**
   * False for a sequence number already accepted, one too old for the
   * window (64 or more below the highest accepted), or one that is not a
   * uint48; true otherwise.
   */
  isFresh(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 0 || seq >= SEQ_LIMIT) return false;
    if (seq > this.#top) return true;
    const d = this.#top - seq;
    if (d >= WINDOW) return false;
    const word = d < 32 ? this.#lo : this.#hi;
    return ((word >>> (d & 31)) & 1) === 0;
  }

  /**
   * Marks `seq` as received. Call only for a record that authenticated;
   * an invalid sequence number is ignored.
   */
  accept(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq >= SEQ_LIMIT) return;
    if (seq > this.#top) {
      // Slide the window up: shift the bitmap left by the advance, then
      // mark the new top (bit 0).
      const shift = seq - this.#top;
      if (shift >= WINDOW) {
        this.#hi = 0;
        this.#lo = 0;
      } else if (shift >= 32) {
        this.#hi = this.#lo << (shift - 32);
        this.#lo = 0;
      } else {
        this.#hi = (this.#hi << shift) | (this.#lo >>> (32 - shift));
        this.#lo = this.#lo << shift;
      }
      this.#lo |= 1;
      this.#top = seq;
      return;
    }
    const d = this.#top - seq;
    if (d >= WINDOW) return;
    if (d < 32) this.#lo |= 1 << d;
    else this.#hi |= 1 << (d - 32);
  }
}

/** Sequence numbers a {@link RecentSequences} remembers. */
const RECENT = 32;

/**
 * The last {@link RECENT} record numbers seen, for epoch 0, which has no
 * replay window: it tells a copy the network made of a record from a new
 * record, and never refuses a number for being old or far from the others
 * (epoch-0 records are anyone's: one at 2^48-1 must not make the peer's own
 * look stale).
 */
export class RecentSequences {
  readonly #seqs = new Array<number>(RECENT).fill(-1);
  #next = 0;

  /** Whether `seq` is one of the last added. */
  has(seq: number): boolean {
    return this.#seqs.includes(seq);
  }

  /** Adds `seq`, forgetting the oldest. */
  add(seq: number): void {
    this.#seqs[this.#next] = seq;
    this.#next = (this.#next + 1) % RECENT;
  }
}
