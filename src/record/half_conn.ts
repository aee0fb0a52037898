/**
 * The record layer of one association, one object per direction (as Go's
 * crypto/tls `halfConn`): a {@link ReadHalf} opens records, a
 * {@link WriteHalf} seals them. Each keeps its epochs, their protection and
 * its sequence numbers; the read half also keeps the replay windows, the
 * keys waiting for the peer's ChangeCipherSpec and the records of the next
 * epoch that came before it. What a record means (handshake, alert, data)
 * is the connection's business, not this module's.
 *
 * @module
 */

import {
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  RECORD_HEADER_LENGTH,
  type RecordView,
} from "./header.ts";
import { NULL_PROTECTION, type RecordProtection } from "./protection.ts";
import { RecentSequences, ReplayWindow } from "./replay.ts";
import { BUFFER_OVERHEAD, type MemoryAccount } from "../memory/budget.ts";

/** Why {@link ReadHalf.open} gave no plaintext; `held` means kept for its epoch. */
export type OpenFailure = "version" | "epoch" | "buffer_full" | "replay" | "bad_mac" | "held";

/** Records of the next epoch held while its ChangeCipherSpec is awaited (reordering). */
const MAX_EARLY_RECORDS = 4;

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
  #epochs: (ReadEpoch | undefined)[] = [
    { protection: NULL_PROTECTION, replay: new ReplayWindow() },
  ];
  #epoch = 0;
  #pending: RecordProtection | undefined;
  /** Records of the next epoch that came before its ChangeCipherSpec, copied and charged. */
  #early: RecordView[] = [];
  /** Whether records of the next epoch may still be held (only while handshaking). */
  #holding = true;
  /** What the held records are charged to. */
  readonly #memory: MemoryAccount;
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
    const plaintext = epoch.protection.unprotect(
      record.type,
      record.version,
      record.epoch,
      record.seq,
      record.fragment,
    );
    if (plaintext === null) return "bad_mac";
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
    this.#early.push({
      type: record.type,
      version: record.version,
      epoch: record.epoch,
      seq: record.seq,
      fragment: raw.subarray(RECORD_HEADER_LENGTH),
      raw,
    });
    return "held";
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
    this.#early = [];
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
    this.#early = [];
    this.#recent0 = undefined;
  }
}

/** The sending direction: each epoch's protection and next sequence number. */
export class WriteHalf {
  #protections: (RecordProtection | undefined)[] = [NULL_PROTECTION];
  #seqs: number[];
  #epoch = 0;

  /** `firstSeq`: the epoch-0 sequence number to start from (the server continues the ClientHello's). */
  constructor(firstSeq = 0) {
    this.#seqs = [firstSeq];
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
