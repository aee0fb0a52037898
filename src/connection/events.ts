/**
 * What a connection reports to its owner.
 *
 * @module
 */

import type { HandshakeEvent } from "../handshake/driver.ts";

/** Why a record was dropped without an answer (RFC 6347 §4.1.2.7). */
export type DropReason =
  | "malformed"
  | "version"
  | "epoch"
  | "replay"
  | "bad_mac"
  | "unexpected"
  | "unknown_type"
  | "buffer_full"
  /** Not a record dropped: a resend the peer asked for was held back (once per interval, 3x its bytes). */
  | "resend_limited"
  /** Not a record dropped: a post-handshake message of ours (DTLS 1.3) never acknowledged, given up on. */
  | "unacknowledged";

/** Why a connection ended. */
export type CloseCause =
  /** The peer sent close_notify. */
  | "peer_closed"
  /** The peer sent a fatal alert. */
  | "peer_alert"
  /** The peer broke the protocol: we sent the fatal alert. */
  | "protocol_error"
  | "handshake_timeout"
  | "idle_timeout"
  /** A new handshake from the same address replaced it (RFC 6347 §4.2.8). */
  | "replaced"
  /** The owner closed it (close_notify sent), e.g. at shutdown. */
  | "local"
  /** The owner dropped it without an alert. */
  | "aborted"
  /** Our own failure (see `internal`). */
  | "internal"
  /** Its sequence numbers ran out (RFC 6347 §4.1). */
  | "sequence_exhausted";

/** The fatal alert that ended a connection, as its `closed` event tells it. */
export interface ClosingAlert {
  readonly direction: "sent" | "received";
  readonly description: string;
}

/** Where an internal error (ours, not the peer's) that ended a connection came from. */
export type InternalOrigin = "engine" | "handler" | "log";

/** An event of a connection, drained with `pollEvent()`. */
export type ConnectionEvent =
  | HandshakeEvent
  | {
    readonly type: "data";
    /**
     * The decrypted payload, the receiver's to keep: it never changes. It is
     * a view into a 1 KiB chunk shared only with this connection's other
     * records, so a holder that keeps many for long should `slice()` them.
     */
    readonly data: Uint8Array;
    /** The protected record it came in (a view valid until the next datagram is handled). */
    readonly record: Uint8Array;
  }
  | {
    readonly type: "alert";
    readonly direction: "received" | "sent";
    readonly level: "warning" | "fatal";
    readonly description: string;
  }
  | { readonly type: "dropped"; readonly reason: DropReason; readonly epoch: number }
  | {
    /** A DTLS 1.3 KeyUpdate took effect: the peer's (we read `epoch` now) or ours (we write it). */
    readonly type: "key_update";
    readonly direction: "received" | "sent";
    readonly epoch: number;
  }
  | {
    readonly type: "retransmit";
    /** Our timer fired, or the peer repeated its flight (so it lost ours). */
    readonly cause: "timeout" | "peer_repeat";
  }
  | {
    readonly type: "closed";
    /** Human-readable cause, e.g. "close_notify received", "handshake timeout". */
    readonly reason: string;
    /** True when the connection ended by a failure rather than an orderly close. */
    readonly error: boolean;
    /** Whether its handshake had completed (a failure before is a failed handshake). */
    readonly afterHandshake: boolean;
    /** Why, as a value to count by (the reason is for people). */
    readonly cause: CloseCause;
    /** The fatal alert that ended it, sent or received, if one did. */
    readonly alert: ClosingAlert | undefined;
    /**
     * Set when that failure was ours, not the peer's: a bug in the engine, or
     * a throw from the owner's handler or logging for this connection.
     */
    readonly internal: InternalOrigin | undefined;
  };
