/**
 * Logging of events that an attacker can make happen at will (refused
 * handshakes, floods): the first occurrence of each reason in an interval is
 * logged, the rest only counted, and the count of what was not logged is
 * reported once the interval is over. A flood costs one line per reason per
 * interval, not one per datagram.
 *
 * @module
 */

import type { Logger, LogLevel } from "./log.ts";

interface Slot {
  /** When the current interval began. */
  start: number;
  /** Occurrences logged in this interval. */
  logged: number;
  /** Occurrences in this interval that were counted but not logged. */
  suppressed: number;
  /** The level and event its summary is logged under (those of its entries). */
  readonly level: LogLevel;
  readonly event: string;
}

/**
 * Logs at most `limit` entries per reason per interval, and a summary of the
 * rest. The reasons must come from a fixed set (they are table keys).
 */
export class ThrottledLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #limit: number;
  readonly #slots = new Map<string, Slot>();
  /** Occurrences per reason since creation, logged or not. */
  readonly counts = new Map<string, number>();
  /** The earliest end of an interval with suppressed entries (Infinity: none). */
  #nextFlush = Infinity;

  /** Writes to `log`; `limit` entries (default one) per reason per `intervalMs`. */
  constructor(log: Logger, intervalMs: number, limit = 1) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#limit = limit;
  }

  /**
   * Counts one occurrence of `reason`; logs it unless this reason was logged
   * `limit` times already in the current interval.
   */
  note(
    now: number,
    reason: string,
    level: LogLevel,
    event: string,
    msg: string,
    fields: Record<string, unknown> = {},
  ): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    let slot = this.#slots.get(reason);
    if (slot !== undefined && now - slot.start >= this.#intervalMs) {
      this.#slots.delete(reason);
      this.#summarize(reason, slot);
      slot = undefined;
    }
    if (slot === undefined) {
      slot = { start: now, logged: 0, suppressed: 0, level, event };
      this.#slots.set(reason, slot);
    }
    if (slot.logged >= this.#limit) {
      slot.suppressed++;
      this.#nextFlush = Math.min(this.#nextFlush, slot.start + this.#intervalMs);
      return;
    }
    slot.logged++;
    this.#log.log(level, event, msg, { ...fields, reason });
  }

  /**
   * Reports what was suppressed in intervals that are over (call
   * periodically). The state is updated before anything is logged, so a
   * logger that throws loses one summary, never repeats it.
   */
  flush(now: number): void {
    if (now < this.#nextFlush) return;
    this.#nextFlush = Infinity;
    for (const [reason, slot] of [...this.#slots]) {
      if (now - slot.start < this.#intervalMs) {
        if (slot.suppressed > 0) {
          this.#nextFlush = Math.min(this.#nextFlush, slot.start + this.#intervalMs);
        }
        continue;
      }
      this.#slots.delete(reason);
      this.#summarize(reason, slot);
    }
  }

  /** When a summary is next due (an interval with suppressed entries ends), or undefined. */
  nextFlush(): number | undefined {
    return this.#nextFlush === Infinity ? undefined : this.#nextFlush;
  }

  #summarize(reason: string, slot: Slot): void {
    if (slot.suppressed === 0) return;
    this.#log.log(
      slot.level,
      slot.event,
      `${slot.suppressed} more ${slot.event} (${reason}) not logged in the last ${this.#intervalMs} ms`,
      { reason, suppressed: slot.suppressed },
    );
  }
}
