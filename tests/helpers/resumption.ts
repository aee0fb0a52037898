/**
 * Session resumption in simulator tests: a server resumption policy with
 * test ticket keys, and what a Pair's events say of a handshake.
 */
import assert from "node:assert/strict";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import type { SavedSession } from "../../src/handshake/driver.ts";
import type { ResumptionPolicy } from "../../src/session/resumption.ts";
import { SessionCache } from "../../src/session/session_cache.ts";
import { TicketSealer } from "../../src/session/tickets.ts";
import { seededRandom } from "./random.ts";
import type { Pair } from "./sim.ts";

/** A day, ms: the lifetime of the test policies' sessions. */
export const DAY = 86_400_000;

/** A ticket key secret of the tests. */
export const SECRET_A = new Uint8Array(32).fill(0xa1);

/** Resumption by session ID (a cache of `cacheSize`) and, unless `tickets` is false, by ticket. */
export function testResumption(
  options: { tickets?: boolean; secrets?: Uint8Array[]; cacheSize?: number } = {},
): ResumptionPolicy {
  return {
    lifetimeMs: DAY,
    cache: new SessionCache({ maxEntries: options.cacheSize ?? 100, lifetimeMs: DAY }),
    tickets: options.tickets === false ? undefined : new TicketSealer({
      provider: nobleProvider,
      random: seededRandom("ticket nonces"),
      lifetimeMs: DAY,
      secrets: options.secrets ?? [SECRET_A],
    }),
  };
}

/** The handshake_complete event among `events`, if any. */
export function completed(events: readonly ConnectionEvent[]) {
  const e = events.find((e) => e.type === "handshake_complete");
  return e?.type === "handshake_complete" ? e : undefined;
}

/** The session the pair's client kept to resume (fails the test when it kept none). */
export function saved(pair: Pair): SavedSession {
  const e = pair.clientEvents.find((e) => e.type === "resumable_session");
  assert.ok(e?.type === "resumable_session", "the client kept no session");
  return e.session;
}
