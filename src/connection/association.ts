/**
 * What the endpoint and the shell see of an association, whichever DTLS
 * version it speaks: {@link Connection} (1.2) and {@link Connection13} (1.3)
 * both have this surface.
 *
 * @module
 */

import type { ConnectionEvent, InternalOrigin } from "./events.ts";

/** One association with a peer, sans-I/O. */
export interface Association {
  /** When its handshake began. */
  readonly createdAt: number;
  /** The Connection ID the peer's records carry, once agreed. */
  readonly connectionId: Uint8Array | undefined;
  /** Bytes of handshake buffers held for the peer now. */
  readonly bufferedBytes: number;
  readonly isEstablished: boolean;
  readonly isClosed: boolean;
  /** When the handshake last moved on or a record last authenticated. */
  readonly lastProgress: number;
  /** When the peer was last heard from. */
  readonly lastReceive: number;
  /** Whether it holds a buffer that {@link releaseIdleMemory} would let go. */
  readonly holdsIdleMemory: boolean;
  /** Its opening move (the server answers the ClientHello it was made from). */
  start(): void;
  /**
   * One datagram from the peer (`elsewhere`: from another address, routed
   * by its Connection ID); true when a record of it authenticated and is
   * the newest the peer has sent.
   */
  handleDatagram(datagram: Uint8Array, now: number, elsewhere?: boolean): boolean;
  /** The answer of the key lookup its `psk_lookup` event announced. */
  deliverPskLookup(result: Uint8Array | undefined | Error, now: number): void;
  /** When {@link handleTimeout} should next be called. */
  pollTimeout(): number | undefined;
  handleTimeout(now: number): void;
  /** Protects and queues application data; throws unless established. */
  send(data: Uint8Array): void;
  /** close_notify, then closed; never throws. */
  close(reason?: string, cause?: "local" | "idle_timeout"): void;
  /** Closed without an alert. */
  abort(reason: string, cause?: "aborted" | "replaced"): void;
  /** Ends it for an error outside it: internal_error if it can be sent. */
  failInternal(error: unknown, origin?: InternalOrigin): void;
  pollTransmit(): Uint8Array | undefined;
  pollEvent(): ConnectionEvent | undefined;
  /** Lets go of the buffer received data is copied into. */
  releaseIdleMemory(): void;
  /** Stops resending the last flight on the timer. */
  stopRetransmitting(): void;
}
