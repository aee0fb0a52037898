/**
 * The server's resumption policy: how long a session may be resumed, and by
 * which means (a session cache for session IDs, a ticket sealer for
 * tickets), as the handshake consults it.
 *
 * @module
 */

import type { CryptoProvider } from "../crypto/provider.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import type { Session } from "./session.ts";
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

/**
 * Why a PSK session cannot be resumed now, or undefined when it can: its
 * identity must still have the key it was made with (`identity_unknown`
 * otherwise). A key that must be looked up is not waited for: a store that
 * answers later (`asynchronous`, or a lookup that returns a Promise) makes
 * it `mismatch`, and a full handshake follows.
 */
export function pskSessionRefusal(
  session: Session,
  lookupPsk: (identity: Uint8Array) => Uint8Array | undefined | Promise<Uint8Array | undefined>,
  asynchronous: boolean,
  provider: CryptoProvider,
): "identity_unknown" | "mismatch" | undefined {
  if (asynchronous) return "mismatch";
  const key = lookupPsk(session.identityBytes);
  if (!(key === undefined || key instanceof Uint8Array)) {
    Promise.resolve(key).catch(() => {});
    return "mismatch";
  }
  if (key === undefined || !constantTimeEqual(pskCheck(provider, key), session.pskCheck)) {
    return "identity_unknown";
  }
  return undefined;
}

/**
 * Whether a certificate session's client authentication still holds under
 * the policy `auth` at `now`: a client certificate only under the policy
 * that accepted it (same id) and until its chain expires; a session without
 * one only while no certificate is required.
 */
export function clientAuthenticationHolds(
  session: Session,
  auth: { readonly id?: Uint8Array; readonly required: boolean } | undefined,
  now: number,
): boolean {
  const peer = session.peerCertificate;
  if (peer === undefined) return auth?.required !== true;
  return auth?.id !== undefined && peer.policyId.length > 0 &&
    constantTimeEqual(auth.id, peer.policyId) &&
    (peer.notAfter === 0 || now <= peer.notAfter);
}
