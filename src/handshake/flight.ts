/**
 * Flights and their retransmission (RFC 6347 §4.2.4), kept apart from the
 * message logic: a flight is built once, as plaintext items, and every
 * (re)transmission only wraps the same items in fresh records.
 *
 * @module
 */

import { encodeHandshakeMessage } from "./fragments.ts";
import type { RandomSource } from "../crypto/provider.ts";

/** One item of a flight: a whole handshake message, or a ChangeCipherSpec. */
export type FlightItem =
  | {
    readonly kind: "handshake";
    readonly epoch: number;
    readonly msgType: number;
    readonly messageSeq: number;
    readonly body: Uint8Array;
  }
  | { readonly kind: "change_cipher_spec"; readonly epoch: number };

/** Retransmission timing (RFC 6347 §4.2.4.1). */
export interface RetransmitPolicy {
  /** First timeout, ms (RFC: 1 s). */
  readonly initialMs: number;
  /** Cap of the doubling timeout, ms (RFC: 60 s). */
  readonly maxMs: number;
  /** Timeouts after which the handshake is abandoned. */
  readonly maxRetransmits: number;
  /**
   * Up to this fraction of each timeout is taken off at random (default 0:
   * the exact schedule). Peers that lost their flights together (a burst
   * that overflowed a socket buffer, a server restart) then come back spread
   * over that share of the interval instead of all in the same instant again.
   * A timer never fires later than the RFC's schedule.
   */
  readonly jitter?: number;
}

/** The RFC's defaults and a bounded number of tries. */
export const DEFAULT_RETRANSMIT: RetransmitPolicy = {
  initialMs: 1000,
  maxMs: 60_000,
  maxRetransmits: 6,
  jitter: 0.25,
};

/** What a timer expiry asks for. */
export type TimerVerdict = "none" | "resend" | "give_up";

/** No flight: shared, never written to. */
const NO_FLIGHT: readonly FlightItem[] = Object.freeze([]);

/**
 * The last flight sent and its timer. A final flight (the server's
 * ChangeCipherSpec + Finished) is kept without a timer: it is resent only when
 * the peer repeats its own last flight.
 */
export class FlightTimer {
  readonly #policy: RetransmitPolicy;
  /** Draws the jitter; absent, there is none. */
  readonly #random: RandomSource | undefined;
  #flight: readonly FlightItem[] = NO_FLIGHT;
  #deadline: number | undefined;
  #timeoutMs: number;
  #retransmits = 0;

  constructor(policy: RetransmitPolicy, random?: RandomSource) {
    this.#policy = policy;
    this.#random = random;
    this.#timeoutMs = policy.initialMs;
  }

  /** The current timeout with up to `jitter` of it taken off. */
  #interval(): number {
    const jitter = this.#policy.jitter ?? 0;
    if (jitter <= 0 || this.#random === undefined) return this.#timeoutMs;
    const b = this.#random(2);
    const uniform = ((b[0]! << 8) | b[1]!) / 65_536;
    return Math.round(this.#timeoutMs * (1 - jitter * uniform));
  }

  /** The flight most recently sent. */
  get flight(): readonly FlightItem[] {
    return this.#flight;
  }

  /** When the timer fires, if armed. */
  get deadline(): number | undefined {
    return this.#deadline;
  }

  /** Records a new flight; a new flight resets the backoff. */
  start(flight: readonly FlightItem[], now: number, armed: boolean): void {
    this.#flight = flight;
    this.#timeoutMs = this.#policy.initialMs;
    this.#retransmits = 0;
    this.#deadline = armed ? now + this.#interval() : undefined;
  }

  /** The peer answered: stop the timer (the flight is kept for peer-triggered resends). */
  disarm(): void {
    this.#deadline = undefined;
  }

  /** Starts the current interval again from `now`, if the timer is armed (a resend the peer asked for). */
  restart(now: number): void {
    if (this.#deadline !== undefined) this.#deadline = now + this.#interval();
  }

  /** Forgets the flight entirely. */
  clear(): void {
    this.#flight = NO_FLIGHT;
    this.#deadline = undefined;
  }

  /** Called on every timeout check. */
  poll(now: number): TimerVerdict {
    if (this.#deadline === undefined || now < this.#deadline) return "none";
    if (this.#retransmits >= this.#policy.maxRetransmits) {
      this.#deadline = undefined;
      return "give_up";
    }
    this.#retransmits++;
    this.#timeoutMs = Math.min(this.#timeoutMs * 2, this.#policy.maxMs);
    this.#deadline = now + this.#interval();
    return "resend";
  }
}

/**
 * A flight of handshake messages being built: each numbered with the next
 * message_seq and handed to `record` (the transcript) as it is added.
 */
export class FlightBuilder {
  readonly items: FlightItem[] = [];
  #seq: number;
  readonly #record: (message: Uint8Array) => void;

  constructor(firstSeq: number, record: (message: Uint8Array) => void) {
    this.#seq = firstSeq;
    this.#record = record;
  }

  /** The message_seq the next message takes. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** Adds a handshake message in `epoch`. */
  add(msgType: number, body: Uint8Array, epoch = 0): void {
    const messageSeq = this.#seq++;
    this.items.push({ kind: "handshake", epoch, msgType, messageSeq, body });
    this.#record(encodeHandshakeMessage(msgType, messageSeq, body));
  }

  /** Adds a ChangeCipherSpec (epoch 0; not a handshake message, not recorded). */
  changeCipherSpec(): void {
    this.items.push({ kind: "change_cipher_spec", epoch: 0 });
  }
}
