/**
 * The seam between the record layer (the connection) and the role-specific
 * handshake logic: what a driver is asked, and what it may ask of its host.
 *
 * @module
 */

import type { CryptoProvider, RandomSource, SigningKey } from "../crypto/provider.ts";
import type { RecordProtection } from "../record/protection.ts";
import type { FlightItem, RetransmitPolicy } from "./flight.ts";
import type { HandshakeReassembler } from "./fragments.ts";
import type { TicketRefusal } from "../session/tickets.ts";
import { AlertDescription } from "./messages.ts";

/** Settings shared by every connection of an endpoint. */
export interface ConnectionConfig {
  /** Crypto primitives. */
  readonly provider: CryptoProvider;
  /** Random source (randoms, ephemeral keys, CBC IVs). */
  readonly random: RandomSource;
  /** Largest datagram we send, bytes. Handshake messages are fragmented to fit. */
  readonly mtu: number;
  /** Flight retransmission timing. */
  readonly retransmit: RetransmitPolicy;
  /** A handshake not complete after this long is abandoned, ms. */
  readonly handshakeTimeoutMs: number;
  /** Largest handshake message accepted, bytes (bounds reassembly). */
  readonly maxHandshakeMessage: number;
  /** Bytes of handshake buffers (reassembly, early records) held per connection at most. */
  readonly maxReassemblyPerHandshake: number;
  /**
   * DTLS 1.3: records one key protects before we send a KeyUpdate (RFC
   * 9147 §8); none: half the suite's confidentiality limit (RFC 9147 §4.5.3).
   */
  readonly keyUpdateAfterRecords?: number;
}

/** A certificate chain and the key of its leaf: what one side proves itself with. */
export interface CertificateWithKey {
  /** DER certificates, leaf first, as the Certificate message carries them. */
  readonly chain: readonly Uint8Array[];
  /** The leaf's private key. */
  readonly key: SigningKey;
  /** The leaf's SubjectPublicKeyInfo (DER): what a raw public key certificate carries (RFC 7250). */
  readonly spki: Uint8Array;
}

/**
 * What the check of a peer's certificate chain found: the leaf's public key
 * when the chain is trusted, else the alert to fail with and why.
 */
export type CertificateVerdict =
  | {
    readonly ok: true;
    readonly spki: Uint8Array;
    readonly subject: string;
    /** When the chain stops being valid: the earliest notAfter on it, ms since the epoch. */
    readonly notAfter: number;
  }
  | {
    readonly ok: false;
    readonly alert:
      | "bad_certificate"
      | "unsupported_certificate"
      | "certificate_expired"
      | "unknown_ca";
    readonly reason: string;
  };

/** The alert each refusal of a chain carries. */
export const VERDICT_ALERTS = {
  bad_certificate: AlertDescription.BadCertificate,
  unsupported_certificate: AlertDescription.UnsupportedCertificate,
  certificate_expired: AlertDescription.CertificateExpired,
  unknown_ca: AlertDescription.UnknownCa,
} as const;

/** Checks a peer's certificate chain (leaf first) at `now` (see `src/pki/`). */
export type ChainCheck = (chain: readonly Uint8Array[], now: number) => CertificateVerdict;

/** The peer's certificate, as the handshake authenticated it. */
export interface PeerCertificate {
  /** The leaf's subject, for display. */
  readonly subject: string;
  /** SHA-256 of the leaf's SubjectPublicKeyInfo, lowercase hex: what identifies the key. */
  readonly spkiSha256: string;
}

/** What a handshake driver reports to the owner of the connection. */
export type HandshakeEvent =
  | {
    readonly type: "psk_identity";
    /** The identity as text (invalid UTF-8 replaced): for display only. */
    readonly identity: string;
    /** The identity exactly as the peer sent it. */
    readonly identityBytes: Uint8Array;
    /** Whether the key store knows it (an unknown one carries on with a random key). */
    readonly known: boolean;
  }
  | {
    readonly type: "handshake_complete";
    readonly suite: string;
    readonly version: "DTLS 1.2" | "DTLS 1.3";
    /** The PSK identity as text (invalid UTF-8 replaced): for display only. */
    readonly identity: string;
    /** The PSK identity exactly as sent. */
    readonly identityBytes: Uint8Array;
    readonly extendedMasterSecret: boolean;
    readonly encryptThenMac: boolean;
    readonly group: string | undefined;
    /** The client's certificate, when one authenticated it (server side, client authentication). */
    readonly peerCertificate?: PeerCertificate;
    /** How an abbreviated handshake found its session; absent for a full handshake. */
    readonly resumed?: "ticket" | "session_id";
  }
  | {
    /**
     * The server's key store answers later (a database, a key service): its
     * owner awaits `lookup` and hands the result to the connection
     * (`Connection.deliverPskLookup`), an Error if it failed or took too long.
     */
    readonly type: "psk_lookup";
    readonly lookup: Promise<Uint8Array | undefined>;
  }
  | {
    /** A client's handshake left a session the next connection may resume. */
    readonly type: "resumable_session";
    readonly session: SavedSession;
  }
  | {
    /** A ticket the client offered was not resumed (a full handshake follows). */
    readonly type: "ticket_refused";
    readonly reason: TicketRefusal;
  };

/**
 * What a client keeps to resume a session: the session ID the server gave,
 * or its ticket, with the secrets and choices an abbreviated handshake
 * reuses. Secret: whoever holds it can resume as this client.
 */
export interface SavedSession {
  /** The server's session ID; empty when the server gave a ticket instead. */
  readonly sessionId: Uint8Array;
  /** The server's ticket (RFC 5077), if it gave one. */
  readonly ticket?: Uint8Array;
  readonly suiteId: number;
  /** DTLS 1.2: the master secret; DTLS 1.3: the ticket's resumption PSK. */
  readonly masterSecret: Uint8Array;
  readonly extendedMasterSecret: boolean;
  readonly encryptThenMac: boolean;
  /** DTLS 1.3: the ticket's age_add and when it came, ms, for the obfuscated age (RFC 8446 §4.2.11.1). */
  readonly ticketAgeAdd?: number;
  readonly receivedAt?: number;
  /** DTLS 1.3: when the ticket stops being good, ms since the epoch (its lifetime). */
  readonly expiresAt?: number;
}

/** The role-specific half of the handshake (server.ts, client.ts). */
export interface HandshakeDriver {
  /** A complete, in-order handshake message arrived in `epoch`. */
  onMessage(msgType: number, messageSeq: number, body: Uint8Array, epoch: number): void;
  /** The peer's ChangeCipherSpec arrived (epoch 0). */
  onChangeCipherSpec(): void;
  /** Called when the connection is established and the peer repeats an old handshake message. */
  onPeerRetransmit(messageSeq: number): void;
  /** The client's opening move (server: no-op). */
  start(): void;
  /** A record of the next epoch came before its ChangeCipherSpec and is held (optional). */
  onHeldRecord?(): void;
  /** The answer of a PSK lookup the driver announced with a `psk_lookup` event (server). */
  onPskLookup?(result: Uint8Array | undefined | Error): void;
}

/** What a driver may do to its connection. */
export interface HandshakeHost {
  /** Shared settings. */
  readonly config: ConnectionConfig;
  /** The time of the call being handled. */
  readonly now: number;
  /** The inbound handshake queue (drivers set its next expected message_seq). */
  readonly inbound: HandshakeReassembler;
  /** Sends a flight and remembers it for retransmission. */
  sendFlight(items: FlightItem[], armTimer: boolean): void;
  /** Resends the last flight (the peer repeated its own). */
  resendFlight(): void;
  /** Stops the retransmission timer: the peer answered. */
  disarmTimer(): void;
  /** Keys for reading epoch 1, used once the peer's ChangeCipherSpec arrives. */
  setPendingRead(protection: RecordProtection): void;
  /**
   * The held handshake records of the next epoch, opened with the pending
   * keys but not read (see `ReadHalf.peekHeldHandshakes`).
   */
  peekHeldHandshakes(): Uint8Array[];
  /** Switches reading to the pending epoch (on the peer's ChangeCipherSpec). */
  activatePendingRead(): void;
  /** Installs the write protection of `epoch`. */
  setWrite(epoch: number, protection: RecordProtection): void;
  /** Reports an event. */
  emit(event: HandshakeEvent): void;
  /** Sends a warning alert without closing (e.g. no_renegotiation). */
  sendWarning(description: number): void;
  /** The handshake is done: application data may flow. */
  established(): void;
  /**
   * The handshake agreed that the peer's records carry `cid` (RFC 9146):
   * records of type tls12_cid are read with it from now on.
   */
  useConnectionId(cid: Uint8Array): void;
}
