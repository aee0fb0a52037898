/**
 * A full in-memory handshake, client and server engines, no sockets: the CPU
 * cost of one PSK and one ECDHE-PSK handshake including the cookie exchange,
 * per crypto provider; and of DTLS 1.3's (its HelloRetryRequest included),
 * with (EC)DHE and without. `deno task bench`
 */
import {
  connectionConfig,
  createClientConnection,
  createClientConnection13,
  ServerEndpoint,
} from "../src/connection/endpoint.ts";
import type { Association } from "../src/connection/association.ts";
import { SUITES_13 } from "../src/record/suites13.ts";
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import type { ConnectionConfig } from "../src/connection/connection.ts";
import { suiteByName } from "../src/record/suites.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const key = new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]);

function handshake(
  config: ConnectionConfig,
  suiteName: string,
  endpoint: ServerEndpoint,
  peer: string,
): void {
  const client = createClientConnection(config, {
    identity: new TextEncoder().encode("bench"),
    psk: key,
    suites: [suiteByName(suiteName)],
    groups: ["x25519"],
  }, 0);
  run(client, endpoint, peer);
}

function handshake13(
  config: ConnectionConfig,
  suiteName: string,
  modes: readonly ("psk_dhe_ke" | "psk_ke")[],
  endpoint: ServerEndpoint,
  peer: string,
): void {
  const client = createClientConnection13(config, {
    identity: new TextEncoder().encode("bench"),
    psk: key,
    suites: SUITES_13.filter((s) => s.name === suiteName),
    groups: ["x25519"],
    modes,
  }, 0);
  run(client, endpoint, peer);
}

/** Moves datagrams between a client and the endpoint until the handshake completes. */
function run(client: Association, endpoint: ServerEndpoint, peer: string): void {
  for (let round = 0; round < 20 && !client.isEstablished; round++) {
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      const out = endpoint.handleDatagram(d, peer, 0);
      if (out.kind === "hello_verify_request" || out.kind === "hello_retry_request") {
        client.handleDatagram(out.datagram, 0);
      }
    }
    const server = endpoint.get(peer);
    for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) client.handleDatagram(d, 0);
  }
  if (!client.isEstablished) throw new Error("bench handshake did not complete");
  endpoint.remove(peer);
}

for (const provider of [nobleProvider, nodeProvider]) {
  const config = connectionConfig(provider, random);
  for (
    const suite of [
      "TLS_PSK_WITH_AES_128_CCM",
      "TLS_PSK_WITH_AES_128_GCM_SHA256",
      "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    ]
  ) {
    const endpoint = new ServerEndpoint({
      connection: config,
      psk: {
        lookupPsk: () => key,
        identityHint: new Uint8Array(0),
        suites: [suiteByName(suite)],
        groups: ["x25519"],
        maxIdentityLength: 128,
      },
      maxConnections: 10,
      idleTimeoutMs: 60_000,
      // Every bench handshake comes from 127.0.0.1: no per-address rate limit.
      handshakeRate: 0,
    });
    let n = 0;
    Deno.bench({
      name: `handshake ${suite}: ${provider.name}`,
      group: suite,
      baseline: provider === nobleProvider,
      fn: () => handshake(config, suite, endpoint, `127.0.0.1:${n++ % 1000}`),
    });
  }
}

{
  const config = connectionConfig(nodeProvider, random);
  const endpoint = new ServerEndpoint({
    connection: config,
    psk: {
      lookupPsk: () => key,
      identityHint: new Uint8Array(0),
      suites: [suiteByName("TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256")],
      groups: ["x25519"],
      maxIdentityLength: 128,
    },
    maxConnections: 10,
    idleTimeoutMs: 60_000,
    handshakeRate: 0,
  });
  let n = 0;
  for (
    const [name, modes] of [
      ["psk_dhe_ke", ["psk_dhe_ke"]],
      ["psk_ke", ["psk_ke"]],
    ] as const
  ) {
    Deno.bench({
      name: `handshake DTLS 1.3 TLS_AES_128_GCM_SHA256 ${name}: node`,
      group: "dtls13",
      fn: () =>
        handshake13(config, "TLS_AES_128_GCM_SHA256", modes, endpoint, `127.0.0.1:${n++ % 1000}`),
    });
  }
  Deno.bench({
    name: "handshake DTLS 1.2 TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256: node",
    group: "dtls13",
    baseline: true,
    fn: () =>
      handshake(
        config,
        "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
        endpoint,
        `127.0.0.2:${n++ % 1000}`,
      ),
  });
}
