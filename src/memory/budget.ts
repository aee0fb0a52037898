/**
 * Memory a peer makes us hold, charged as it is allocated at three levels:
 * the connection, the peer's source address, and the whole endpoint.
 *
 * A buffer held for a peer before it has authenticated (handshake fragments
 * waiting for the rest of their message, records of an epoch whose keys are
 * not active yet) is charged when it is allocated, never by the length a
 * peer declares, and refused when any of the three levels is full. The
 * per-source share keeps one address (or one IPv6 /64) from taking the
 * endpoint's whole budget, so that other peers' handshakes go on.
 *
 * @module
 */

/** Limits of a {@link MemoryBudget}. */
export interface MemoryBudgetLimits {
  /** Bytes held for all peers together. */
  readonly total: number;
  /** Bytes held for the peers of one source address together. */
  readonly perSource: number;
}

/**
 * The endpoint's budget and its per-source shares. The per-source table holds
 * only sources with bytes charged, so it is bounded by the connections.
 */
export class MemoryBudget {
  readonly limits: MemoryBudgetLimits;
  #used = 0;
  readonly #bySource = new Map<string, number>();

  /** A budget with these limits (non-negative integers). */
  constructor(limits: MemoryBudgetLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(`Cannot create memory budget: ${name} ${value}`);
      }
    }
    this.limits = limits;
  }

  /** Bytes charged in all. */
  get used(): number {
    return this.#used;
  }

  /** Bytes charged to one source. */
  usedBy(source: string): number {
    return this.#bySource.get(source) ?? 0;
  }

  /** An account for one connection of `source`, limited to `perConnection` bytes. */
  account(source: string, perConnection: number): MemoryAccount {
    return new MemoryAccount(this, source, perConnection);
  }

  /** @internal Charges `bytes` to `source`; false (taking nothing) when its share or the total is full. */
  take(source: string, bytes: number): boolean {
    const bySource = this.#bySource.get(source) ?? 0;
    if (bySource + bytes > this.limits.perSource || this.#used + bytes > this.limits.total) {
      return false;
    }
    this.#bySource.set(source, bySource + bytes);
    this.#used += bytes;
    return true;
  }

  /** @internal Gives back `bytes` taken for `source`. */
  give(source: string, bytes: number): void {
    const left = (this.#bySource.get(source) ?? 0) - bytes;
    if (left > 0) this.#bySource.set(source, left);
    else this.#bySource.delete(source);
    this.#used = Math.max(0, this.#used - bytes);
  }
}

/**
 * One connection's share of a {@link MemoryBudget}. Every charge is checked
 * against the connection's own limit, its source's share and the total;
 * {@link releaseAll} gives back what is left when the connection goes.
 */
export class MemoryAccount {
  readonly #budget: MemoryBudget | undefined;
  readonly #source: string;
  readonly limit: number;
  #used = 0;

  /** An account of `limit` bytes, charged to `budget` under `source` when given. */
  constructor(budget: MemoryBudget | undefined, source: string, limit: number) {
    if (!Number.isInteger(limit) || limit < 0) {
      throw new RangeError(`Cannot create memory account: limit ${limit}`);
    }
    this.#budget = budget;
    this.#source = source;
    this.limit = limit;
  }

  /** Bytes this connection holds now. */
  get used(): number {
    return this.#used;
  }

  /** Takes `bytes`; false (taking nothing) when any level would go over its limit. */
  charge(bytes: number): boolean {
    if (!Number.isInteger(bytes) || bytes < 0) {
      throw new RangeError(`Cannot charge memory: ${bytes} bytes`);
    }
    if (this.#used + bytes > this.limit) return false;
    if (this.#budget !== undefined && !this.#budget.take(this.#source, bytes)) return false;
    this.#used += bytes;
    return true;
  }

  /** Gives back `bytes` charged earlier (never more than is held). */
  release(bytes: number): void {
    const n = Math.min(Math.max(0, bytes), this.#used);
    if (n === 0) return;
    this.#used -= n;
    this.#budget?.give(this.#source, n);
  }

  /** Gives back everything this connection holds. */
  releaseAll(): void {
    this.release(this.#used);
  }
}

/**
 * Bytes charged for each buffer object besides its contents: a typed array
 * and its bookkeeping cost V8 about this much, so a peer that sends many
 * tiny pieces pays for what they really take.
 */
export const BUFFER_OVERHEAD = 96;

/**
 * An account that holds nothing (any charge is refused): what a connection
 * keeps once it has nothing to buffer, so that it holds no account of its own.
 */
export const NO_ACCOUNT: MemoryAccount = new MemoryAccount(undefined, "", 0);
