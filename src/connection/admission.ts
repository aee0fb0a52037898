/**
 * Admission control of new handshakes, sans-I/O: a per-source-address rate
 * limit in bounded memory. Only handshakes whose cookie verified reach it
 * (RFC 6347 §4.2.1), so the addresses it counts have answered a
 * HelloVerifyRequest and are not spoofed.
 *
 * @module
 */

import { parseIp } from "../codec/ip_address.ts";

/** Settings of a {@link SourceRateLimiter}. */
export interface SourceRateLimiterOptions {
  /** Handshakes per second one source address may start, sustained; 0 for no limit. */
  readonly ratePerSecond: number;
  /** How many it may start at once after being quiet (the bucket size). */
  readonly burst: number;
  /** Most source addresses tracked at once (bounds memory). */
  readonly maxSources: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * One token bucket per source address, in a table of bounded size kept in
 * least-recently-used order. When the table is full, buckets that have
 * refilled (their source has been quiet) are forgotten first, since a fresh
 * bucket is full anyway; failing that, the least recently used one goes,
 * which at worst gives that source a fresh burst.
 */
export class SourceRateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxSources: number;
  readonly #buckets = new Map<string, Bucket>();

  /** A limiter with these settings. */
  constructor(options: SourceRateLimiterOptions) {
    const { ratePerSecond, burst, maxSources } = options;
    if (!(ratePerSecond >= 0)) throw new RangeError(`Cannot limit rate: ${ratePerSecond}/s`);
    if (!(burst >= 1)) throw new RangeError(`Cannot limit rate: burst ${burst}`);
    if (!Number.isInteger(maxSources) || maxSources < 1) {
      throw new RangeError(`Cannot limit rate: maxSources ${maxSources}`);
    }
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#maxSources = maxSources;
  }

  /** Source addresses currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for `source` at `now` (ms); false when its bucket is empty. */
  tryTake(source: string, now: number): boolean {
    if (this.#rate === 0) return true;
    let bucket = this.#buckets.get(source);
    if (bucket !== undefined) {
      this.#refill(bucket, now);
      // Re-insert: Map order is our least-recently-used order.
      this.#buckets.delete(source);
    } else {
      if (this.#buckets.size >= this.#maxSources) this.#evict(now);
      bucket = { tokens: this.#burst, at: now };
    }
    this.#buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #refill(bucket: Bucket, now: number): void {
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (elapsed * this.#rate) / 1000);
    bucket.at = now;
  }

  #evict(now: number): void {
    for (const [source, bucket] of this.#buckets) {
      this.#refill(bucket, now);
      if (bucket.tokens < this.#burst) break;
      this.#buckets.delete(source);
    }
    if (this.#buckets.size < this.#maxSources) return;
    const oldest = this.#buckets.keys().next();
    if (!oldest.done) this.#buckets.delete(oldest.value);
  }
}

/**
 * The source a peer key is counted under by the per-source limits: the
 * address of `1.2.3.4:5` (`1.2.3.4`), and for IPv6 the /64 network of
 * `[2001:db8::1]:5` (`2001:db8:0:0::/64`), since one host or site commonly
 * holds a whole /64 and could otherwise take a share per address. An
 * IPv4-mapped IPv6 address counts as its IPv4 address.
 */
export function sourceAddress(peer: string): string {
  const colon = peer.lastIndexOf(":");
  const host = colon < 0 ? peer : peer.slice(0, colon);
  if (!host.startsWith("[")) return host;
  const bytes = parseIp(host.slice(1, -1));
  if (bytes === undefined || bytes.length !== 16) return host;
  if (isV4Mapped(bytes)) return `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return `${groups.join(":")}::/64`;
}

function isV4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}
