/**
 * The seam between a DTLS 1.3 connection (`src/connection/connection13.ts`:
 * records, acknowledgements, retransmission, KeyUpdate) and the role that
 * drives its handshake (`server13.ts`, `client13.ts`).
 *
 * @module
 */

import type { CipherSuite13 } from "../record/suites13.ts";
import type { ConnectionConfig, HandshakeEvent } from "./driver.ts";

/** One handshake message of a flight, before it is numbered and cut into records. */
export interface OutgoingMessage13 {
  /** The epoch it goes in: 0 (the hellos, in the clear), 2 (the rest of the handshake). */
  readonly epoch: number;
  readonly msgType: number;
  readonly body: Uint8Array;
}

/** What a DTLS 1.3 handshake driver may do to its connection. */
export interface Handshake13Host {
  readonly config: ConnectionConfig;
  /** The time of the call being handled. */
  readonly now: number;
  /** The suite the handshake chose: the keys installed from now on are of it. */
  useSuite(suite: CipherSuite13): void;
  /**
   * Sends a flight: its messages numbered with our next message_seq, cut to
   * the MTU, and kept until acknowledged or answered.
   */
  sendFlight(messages: readonly OutgoingMessage13[]): void;
  /**
   * Sends one post-handshake message (a NewSessionTicket) in the current
   * write epoch, kept until acknowledged; owed ACKs stay owed.
   */
  sendMessage(msgType: number, body: Uint8Array): void;
  /** Our last flight was answered (the peer's next flight is its acknowledgement). */
  flightAnswered(): void;
  /** Keys for reading `epoch` from `secret` (2: the handshake's, 3: the application's). */
  installRead(epoch: number, secret: Uint8Array): void;
  /** Keys for writing `epoch`. */
  installWrite(epoch: number, secret: Uint8Array): void;
  emit(event: HandshakeEvent): void;
  /** Owes the peer an ACK for the record being handled (the client's Finished). */
  acknowledge(): void;
  /**
   * The Connection IDs agreed (RFC 9147 §9): `ours` in the records we
   * receive (undefined: none), `theirs` in those we send (empty: none).
   */
  useConnectionIds(ours: Uint8Array | undefined, theirs: Uint8Array): void;
  /** The handshake completed: application data may flow. */
  established(): void;
}

/** A role's side of the DTLS 1.3 handshake. */
export interface Handshake13Driver {
  /** Its opening move: the server answers its ClientHello, the client sends one. */
  start(): void;
  /** A whole handshake message of the peer's, in order, in `epoch`. */
  onMessage(msgType: number, body: Uint8Array, epoch: number): void;
  /**
   * Whether a new handshake message in the clear may be the peer's next:
   * a client's until the ServerHello; never a server's (its ClientHello
   * came through the endpoint).
   */
  readonly readsPlaintext: boolean;
  /** The answer of a key lookup announced with a `psk_lookup` event (server). */
  onPskLookup?(result: Uint8Array | undefined | Error): void;
}
