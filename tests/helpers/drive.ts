/**
 * Driving many clients against one ServerEndpoint on virtual time, each from
 * its own peer address, with a hook that decides which datagrams arrive.
 */

import type { Connection } from "../../src/connection/connection.ts";
import type { Association } from "../../src/connection/association.ts";
import type { ConnectionEvent, DropReason } from "../../src/connection/events.ts";
import {
  connectionConfig,
  createClientConnection,
  type EndpointOutcome,
  ServerEndpoint,
  type ServerEndpointOptions,
} from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { ContentType, parseRecords } from "../../src/record/header.ts";
import { parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import type { ClientHandshakeOptions } from "../../src/handshake/client.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { seededRandom } from "./random.ts";
import { clientPsk, serverPsk } from "./sim.ts";

/** Plain PSK: the cheapest handshake, for tests that need many. */
export const CHEAP = [suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256")];

/** An endpoint with test keys; `overrides` set its admission limits. */
export function testEndpoint(
  overrides: Partial<ServerEndpointOptions> = {},
  seed = "endpoint",
): ServerEndpoint {
  return new ServerEndpoint({
    connection: connectionConfig(nobleProvider, seededRandom(seed)),
    psk: serverPsk(),
    maxConnections: 10_000,
    idleTimeoutMs: 600_000,
    ...overrides,
  });
}

/** A client connection with test keys (plain PSK unless told otherwise). */
export function testClient(
  seed: string,
  now: number,
  overrides: Partial<ClientHandshakeOptions> = {},
): Connection {
  return createClientConnection(
    connectionConfig(nobleProvider, seededRandom(seed)),
    clientPsk({ suites: CHEAP, ...overrides }),
    now,
  );
}

/** Decides whether a client's datagram reaches the endpoint (default: all do). */
export type Gate = (datagram: Uint8Array, index: number) => boolean;

/**
 * Moves datagrams between `client` (at `peer`) and the endpoint until quiet.
 * Returns the endpoint's outcome for each client datagram that arrived.
 */
export function converse(
  endpoint: ServerEndpoint,
  client: Association,
  peer: string,
  now: number,
  gate: Gate = () => true,
): EndpointOutcome[] {
  const outcomes: EndpointOutcome[] = [];
  let index = 0;
  for (let round = 0; round < 50; round++) {
    let moved = false;
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      moved = true;
      if (!gate(d, index++)) continue;
      const out = endpoint.handleDatagram(d, peer, now);
      outcomes.push(out);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, now);
    }
    const server = endpoint.get(peer);
    if (server !== undefined) {
      for (let e = server.pollEvent(); e; e = server.pollEvent()) void e;
      for (let d = server.pollTransmit(); d; d = server.pollTransmit()) {
        moved = true;
        client.handleDatagram(d, now);
      }
    }
    for (let e = client.pollEvent(); e; e = client.pollEvent()) void e;
    if (!moved) break;
  }
  return outcomes;
}

/**
 * Sends `payload` from the established `client` (at `peer`) to the endpoint
 * and drains the server's events: the bytes of its data event, if it had one.
 */
export function deliver(
  endpoint: ServerEndpoint,
  client: Association,
  peer: string,
  payload: Uint8Array,
  now: number,
): Uint8Array | undefined {
  client.send(payload);
  for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
    endpoint.handleDatagram(d, peer, now);
  }
  let data: Uint8Array | undefined;
  const server = endpoint.get(peer);
  for (let e = server?.pollEvent(); e; e = server?.pollEvent()) {
    if (e.type === "data") data = e.data;
  }
  return data;
}

/** Everything a connection has to say now: its events and the datagrams it would send. */
export function drain(connection: Association): { events: ConnectionEvent[]; sent: Uint8Array[] } {
  const events: ConnectionEvent[] = [];
  const sent: Uint8Array[] = [];
  for (let e = connection.pollEvent(); e; e = connection.pollEvent()) events.push(e);
  for (let d = connection.pollTransmit(); d; d = connection.pollTransmit()) sent.push(d);
  return { events, sent };
}

/**
 * The `dropped` events of `connection` by reason, counted as they are
 * polled from now on (they still reach whoever polls them): drain the
 * connection before reading the counts.
 */
export function watchDrops(connection: Association): Partial<Record<DropReason, number>> {
  const counts: Partial<Record<DropReason, number>> = {};
  const poll = connection.pollEvent.bind(connection);
  connection.pollEvent = () => {
    const event = poll();
    if (event?.type === "dropped") counts[event.reason] = (counts[event.reason] ?? 0) + 1;
    return event;
  };
  return counts;
}

/** The message_seq a peer that received `datagrams` expects next: one past the last epoch-0 message in them. */
export function nextMessageSeq(datagrams: readonly Uint8Array[]): number {
  let next = 0;
  for (const datagram of datagrams) {
    for (const record of parseRecords(datagram).records) {
      if (record.epoch !== 0 || record.type !== ContentType.Handshake) continue;
      for (const fragment of parseHandshakeFragments(record.fragment)) {
        next = Math.max(next, fragment.messageSeq + 1);
      }
    }
  }
  return next;
}

/**
 * Runs the cookie exchange between `client` (at `peer`) and the endpoint:
 * ClientHello, HelloVerifyRequest, ClientHello with the cookie. The server
 * creates the association and sends flight 4, which is lost (drained, as
 * are both sides' events). Returns the server's connection.
 */
export function upToLostFlight4(
  endpoint: ServerEndpoint,
  client: Association,
  peer: string,
  now: number,
): Association {
  for (let round = 0; round < 2; round++) {
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      const out = endpoint.handleDatagram(d, peer, now);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, now);
    }
  }
  const server = endpoint.get(peer);
  if (server === undefined) throw new Error("The cookie exchange made no association");
  drain(server);
  drain(client);
  return server;
}

/**
 * Runs a handshake between `client` (at `peer`) and the endpoint up to the
 * client's final flight (ClientKeyExchange, ChangeCipherSpec, Finished),
 * which is returned undelivered, with every datagram the client sent on the
 * way (the ClientHellos and the final flight) and every one it received.
 */
export function upToFinalFlight(
  endpoint: ServerEndpoint,
  client: Association,
  peer: string,
  now: number,
): { finalFlight: Uint8Array; sent: Uint8Array[]; received: Uint8Array[] } {
  let finalFlight: Uint8Array | undefined;
  const sent: Uint8Array[] = [];
  const received: Uint8Array[] = [];
  for (let round = 0; round < 10; round++) {
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      sent.push(d.slice());
      if (parseRecords(d).records.some((r) => r.type === ContentType.ChangeCipherSpec)) {
        finalFlight = d;
        continue;
      }
      const out = endpoint.handleDatagram(d, peer, now);
      if (out.kind === "hello_verify_request") {
        received.push(out.datagram.slice());
        client.handleDatagram(out.datagram, now);
      }
    }
    const server = endpoint.get(peer);
    for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) {
      received.push(d.slice());
      client.handleDatagram(d, now);
    }
    while (client.pollEvent());
  }
  if (finalFlight === undefined) throw new Error("Cannot reach the client's final flight");
  return { finalFlight, sent, received };
}

/**
 * A whole session of a client at `peer`, every datagram it sent kept (as an
 * observer on the path would), then ended by the client's close_notify at
 * `closeAt`, and its connection removed as the shell removes it.
 */
export function observedSession(
  endpoint: ServerEndpoint,
  seed: string,
  peer: string,
  now: number,
  closeAt: number,
): Uint8Array[] {
  const seen: Uint8Array[] = [];
  const client = testClient(seed, now);
  converse(endpoint, client, peer, now, (d) => {
    seen.push(d.slice());
    return true;
  });
  if (!client.isEstablished) throw new Error("Cannot observe a session: no handshake");
  const server = endpoint.get(peer)!;
  client.close();
  for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
    endpoint.handleDatagram(d, peer, closeAt);
  }
  if (!server.isClosed) throw new Error("Cannot observe a session: close_notify not taken");
  drain(server);
  endpoint.remove(peer, server);
  return seen;
}
