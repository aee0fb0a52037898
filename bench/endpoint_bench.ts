/**
 * The per-datagram path of an established connection, engine only (no
 * sockets), the cookie exchange and the peer table: what the server pays
 * per datagram apart from the socket. `deno task bench`
 */
import {
  connectionConfig,
  createClientConnection,
  ServerEndpoint,
} from "../src/connection/endpoint.ts";
import type { Connection } from "../src/connection/connection.ts";
import { clientHelloParams, CookieAuthority } from "../src/cookie/cookie.ts";
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import { parseHandshakeFragments } from "../src/handshake/fragments.ts";
import { parseRecords } from "../src/record/header.ts";
import { suiteByName } from "../src/record/suites.ts";
import { peerKey, PeerKeys } from "../src/server/dtls_server.ts";
import { toHex } from "../src/server/log.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const key = new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]);
const SUITE = "TLS_PSK_WITH_AES_128_GCM_SHA256";

function endpointFor(provider = nodeProvider): ServerEndpoint {
  return new ServerEndpoint({
    connection: connectionConfig(provider, random),
    psk: {
      lookupPsk: () => key,
      identityHint: new Uint8Array(0),
      suites: [suiteByName(SUITE)],
      groups: ["x25519"],
      maxIdentityLength: 128,
    },
    maxConnections: 20_000,
    idleTimeoutMs: 600_000,
    handshakeRate: 0,
    maxHalfOpen: 20_000,
  });
}

/** A client connected to `endpoint` as `peer`, in memory; also returns its first ClientHello. */
function connect(endpoint: ServerEndpoint, peer: string, provider = nodeProvider) {
  const client = createClientConnection(connectionConfig(provider, random), {
    identity: new TextEncoder().encode("bench"),
    psk: key,
    suites: [suiteByName(SUITE)],
    groups: ["x25519"],
  }, 0);
  let hello: Uint8Array | undefined;
  for (let round = 0; round < 20 && !client.isEstablished; round++) {
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      hello ??= d;
      const out = endpoint.handleDatagram(d, peer, 0);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, 0);
    }
    const server = endpoint.get(peer);
    for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) client.handleDatagram(d, 0);
  }
  if (!client.isEstablished) throw new Error("bench handshake did not complete");
  while (client.pollEvent());
  const server = endpoint.get(peer)!;
  while (server.pollEvent());
  return { client, server, hello: hello! };
}

/** One echo through the engines: client seals, the server opens and answers, the client opens. */
function echo(endpoint: ServerEndpoint, peer: string, client: Connection, payload: Uint8Array) {
  client.send(payload);
  const out = endpoint.handleDatagram(client.pollTransmit()!, peer, 0);
  if (out.kind !== "connection") throw new Error("bench echo not routed");
  const server = out.connection;
  for (let e = server.pollEvent(); e; e = server.pollEvent()) {
    if (e.type === "data") server.send(e.data);
  }
  client.handleDatagram(server.pollTransmit()!, 0);
  const e = client.pollEvent();
  if (e?.type !== "data") throw new Error("bench echo lost");
}

for (const provider of [nobleProvider, nodeProvider]) {
  const endpoint = endpointFor(provider);
  const { client } = connect(endpoint, "127.0.0.1:40000", provider);
  for (const size of [64, 1200]) {
    const payload = random(size);
    Deno.bench({
      name: `echo round trip ${size} B, both engines, ${SUITE}: ${provider.name}`,
      group: `echo ${size} B`,
      fn: () => echo(endpoint, "127.0.0.1:40000", client, payload),
    });
  }
}

// The cookie exchange: what a ClientHello costs before any state is kept.
{
  const endpoint = endpointFor();
  const { hello } = connect(endpoint, "127.0.0.1:40001");
  const cookies = new CookieAuthority({ provider: nodeProvider, random });
  const body = parseHandshakeFragments(parseRecords(hello).records[0]!.fragment)[0]!.body;
  const params = clientHelloParams(body);
  const peer = new TextEncoder().encode("127.0.0.1:40001");
  const cookie = cookies.mint(peer, params, 0);
  Deno.bench({
    name: "cookie mint",
    group: "cookie",
    fn: () => {
      cookies.mint(peer, params, 0);
    },
  });
  Deno.bench({
    name: "cookie verify",
    group: "cookie",
    fn: () => {
      if (cookies.verify(peer, params, cookie, 0) !== "ok") throw new Error("bench cookie");
    },
  });
  let n = 0;
  Deno.bench({
    name: "endpoint: ClientHello without cookie → HelloVerifyRequest",
    group: "cookie",
    fn: () => {
      if (
        endpoint.handleDatagram(hello, `127.0.0.2:${n++ & 0xffff}`, 0).kind !==
          "hello_verify_request"
      ) {
        throw new Error("bench HelloVerifyRequest");
      }
    },
  });
}

// The peer table with 10,000 entries: the key from the socket address, then the lookup.
{
  const table = new Map<string, number>();
  const addrs: Deno.NetAddr[] = [];
  for (let i = 0; i < 10_000; i++) {
    const addr: Deno.NetAddr = {
      transport: "udp",
      hostname: `127.0.${i >> 8}.${i & 0xff}`,
      port: 10_000 + i,
    };
    addrs.push(addr);
    table.set(peerKey(addr), i);
  }
  let i = 0;
  Deno.bench({
    name: "peer lookup: peerKey(addr) + Map.get, 10,000 peers",
    group: "peer",
    fn: () => {
      if (table.get(peerKey(addrs[i++ % 10_000]!)) === undefined) throw new Error("bench peer");
    },
  });
  const keys = new PeerKeys();
  Deno.bench({
    name: "peer lookup: PeerKeys.of(addr) (the server's, remembered per port) + Map.get",
    group: "peer",
    fn: () => {
      if (table.get(keys.of(addrs[i++ % 10_000]!)) === undefined) throw new Error("bench peer");
    },
  });
}

// What a per-datagram info log line costs even when the level filters it out.
{
  const record = random(1229);
  Deno.bench({
    name: "toHex of a 1200-byte record (the datagram log line's ciphertext field)",
    group: "log",
    fn: () => {
      toHex(record);
    },
  });
}
