/**
 * The server's resumption policy: how long a session may be resumed, and by
 * which means (a session cache for session IDs, a ticket sealer for
 * tickets), as the handshake consults it.
 *
 * @module
 */

import type { CryptoProvider } from "../crypto/provider.ts";
import type { SessionCache } from "./session_cache.ts";
import type { TicketSealer } from "./tickets.ts";

/** Resumption as a server offers it; either means may be absent. */
export interface ResumptionPolicy {
  /** Sessions resumed by session ID (RFC 5246 §7.4.1.2); none: session IDs are not issued. */
  readonly cache: SessionCache | undefined;
  /** Sessions resumed by ticket (RFC 5077); none: tickets are not issued. */
  readonly tickets: TicketSealer | undefined;
  /** How long a session may be resumed after its full handshake, ms. */
  readonly lifetimeMs: number;
}

/** Defaults: a day's sessions (a device waking daily resumes), 10,000 cached. */
export const RESUMPTION_DEFAULTS = Object.freeze(
  {
    lifetimeMs: 86_400_000,
    sessionCacheSize: 10_000,
  } as const,
);

/** Bytes of a session's PSK check value. */
const PSK_CHECK_LENGTH = 16;
const PSK_CHECK_LABEL = new TextEncoder().encode("dtls-server session psk check");

/**
 * A value that changes when the PSK does: a session keeps it, and a
 * resumption checks it against the key the store holds now, so a key
 * replaced in the key file ends its sessions. One-way: it reveals nothing
 * of the key (HMAC-SHA256 under the key, truncated).
 */
export function pskCheck(provider: CryptoProvider, psk: Uint8Array): Uint8Array {
  return provider.hmac("sha256", psk).compute(PSK_CHECK_LABEL).slice(0, PSK_CHECK_LENGTH);
}
