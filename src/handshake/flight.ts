/**
 * Flights and their retransmission (RFC 6347 §4.2.4), kept apart from the
 * message logic: a flight is built once, as plaintext items, and every
 * (re)transmission only wraps the same items in fresh records.
 *
 * @module
 */

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
}

/** The RFC's defaults and a bounded number of tries. */
export const DEFAULT_RETRANSMIT: RetransmitPolicy = {
  initialMs: 1000,
  maxMs: 60_000,
  maxRetransmits: 6,
};

/** What a timer expiry asks for. */
export type TimerVerdict = "none" | "resend" | "give_up";

/**
 * The last flight sent and its timer. A final flight (the server's
 * ChangeCipherSpec + Finished) is kept without a timer: it is resent only when
 * the peer repeats its own last flight.
 */
export class FlightTimer {
  readonly #policy: RetransmitPolicy;
  #flight: readonly FlightItem[] = [];
  #deadline: number | undefined;
  #timeoutMs: number;
  #retransmits = 0;

  constructor(policy: RetransmitPolicy) {
    this.#policy = policy;
    this.#timeoutMs = policy.initialMs;
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
    this.#deadline = armed ? now + this.#timeoutMs : undefined;
  }

  /** The peer answered: stop the timer (the flight is kept for peer-triggered resends). */
  disarm(): void {
    this.#deadline = undefined;
  }

  /** Forgets the flight entirely. */
  clear(): void {
    this.#flight = [];
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
    this.#deadline = now + this.#timeoutMs;
    return "resend";
  }
}
