/**
 * RFC 9146 Connection ID end to end with Mbed TLS 3.6 (the peer here that
 * speaks it; built by .ci/debian13-peers): negotiated with our CID and the
 * client's, and the connection kept through a NAT-like relay that gives the
 * client a new source port mid-connection. The server routes by CID, moves
 * the peer once an authenticated record comes from the new port, logs
 * peer_address_changed, and answers at the new address.
 */
import assert from "node:assert/strict";
import { DEMO, runPeer, type ServerProcess, startServer } from "../helpers/server_process.ts";
import type { RunPeerResult } from "../helpers/server_process.ts";
import { mbedtls36 } from "../helpers/debian13_peers.ts";
import { RebindingRelay } from "../helpers/rebinding_relay.ts";

const TIMEOUT_MS = 20_000;
const ACK = /to \(127\.0\.0\.1:(\d+)\): ACK/;
const ACKS = new RegExp(ACK.source, "g");
/** tls12_cid (RFC 9146 §4): the content type of a record with a Connection ID. */
const TLS12_CID = 25;

/**
 * Mbed TLS 3.6's client with the demo key at `port` (the server's, or a
 * relay's), `extra` its other settings; with `server`'s log for failures.
 */
async function mbedtls(
  server: ServerProcess,
  port: number,
  extra: readonly string[],
): Promise<{ result: RunPeerResult; context: string }> {
  const result = await runPeer(mbedtls36.client(), [
    "server_addr=127.0.0.1",
    `server_port=${port}`,
    "dtls=1",
    `psk=${DEMO.keyHex}`,
    `psk_identity=${DEMO.identity}`,
    ...extra,
  ], { timeoutMs: TIMEOUT_MS });
  const context = `exit ${result.code}, timed out ${result.timedOut}\n--- client stdout:\n` +
    `${result.stdout}\n--- client stderr:\n${result.stderr}\n${server.describe()}`;
  return { result, context };
}

for (
  const suite of ["TLS-PSK-WITH-AES-128-CCM-8", "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256"]
) {
  Deno.test({
    name: `Mbed TLS 3.6 negotiates a Connection ID both ways on ${suite}`,
    ignore: mbedtls36.ignore,
    async fn() {
      await using server = await startServer(["--cid-length", "5"]);
      const { result, context } = await mbedtls(server, server.port, [
        `force_ciphersuite=${suite}`,
        "cid=1",
        "cid_val=c0ffee",
        "exchanges=3",
      ]);
      assert.equal(result.code, 0, context);
      assert.match(result.stdout, /\(initial handshake\) Use of Connection ID has been negotiated/);
      assert.match(result.stdout, /Peer CID \(length 5 Bytes\)/, context);
      assert.equal([...result.stdout.matchAll(ACKS)].length, 3, context);
    },
  });
}

Deno.test({
  name: "Mbed TLS 3.6 with an empty CID of its own still sends ours",
  ignore: mbedtls36.ignore,
  async fn() {
    await using server = await startServer();
    const { result, context } = await mbedtls(server, server.port, [
      "force_ciphersuite=TLS-PSK-WITH-AES-128-GCM-SHA256",
      "cid=1",
    ]);
    assert.equal(result.code, 0, context);
    assert.match(result.stdout, /Peer CID \(length 6 Bytes\)/, context);
    assert.match(result.stdout, ACK, context);
  },
});

Deno.test({
  name: "--cid-length 0 declines: Mbed TLS goes on without a Connection ID",
  ignore: mbedtls36.ignore,
  async fn() {
    await using server = await startServer(["--cid-length", "0"]);
    const { result, context } = await mbedtls(server, server.port, [
      "force_ciphersuite=TLS-PSK-WITH-AES-128-CCM-8",
      "cid=1",
    ]);
    assert.equal(result.code, 0, context);
    assert.match(result.stdout, /Use of Connection ID was rejected by the server/, context);
    assert.match(result.stdout, ACK, context);
  },
});

Deno.test({
  name: "Mbed TLS 3.6 keeps its connection when a NAT gives it a new port mid-connection",
  ignore: mbedtls36.ignore,
  async fn() {
    await using server = await startServer();
    let appRecords = 0;
    // From the second application record on (datagrams that start with a
    // CID record: the handshake's start with handshake records), the
    // client's datagrams leave from a new port.
    await using relay = new RebindingRelay(
      server.port,
      (d) => d[0] === TLS12_CID && ++appRecords === 2,
    );
    const { result, context } = await mbedtls(server, relay.port, [
      "force_ciphersuite=TLS-PSK-WITH-AES-128-CCM-8",
      "cid=1",
      "cid_val=0a0b",
      "exchanges=4",
    ]);
    assert.equal(result.code, 0, context);
    const ports = [...result.stdout.matchAll(ACKS)].map((m) => Number(m[1]));
    assert.deepEqual(ports, [relay.ports[0], ...Array(3).fill(relay.ports[1])], context);
    const moved = await server.waitForEvent("peer_address_changed");
    assert.equal(moved.from, `127.0.0.1:${relay.ports[0]}`, context);
    assert.equal(moved.peer, `127.0.0.1:${relay.ports[1]}`, context);
    assert.equal(server.events("handshake_complete").length, 1, "one connection throughout");
    assert.equal(server.events("peer_address_changed").length, 1, context);
  },
});

Deno.test({
  name: "without a Connection ID the same NAT rebinding loses the connection",
  ignore: mbedtls36.ignore,
  async fn() {
    await using server = await startServer();
    let appRecords = 0;
    // Without CIDs application records are type 23.
    await using relay = new RebindingRelay(server.port, (d) => d[0] === 23 && ++appRecords === 2);
    const { result, context } = await mbedtls(server, relay.port, [
      "force_ciphersuite=TLS-PSK-WITH-AES-128-CCM-8",
      "exchanges=2",
      "read_timeout=2000",
      "hs_timeout=1000-2000",
    ]);
    assert.notEqual(result.code, 0, context);
    assert.equal([...result.stdout.matchAll(ACKS)].length, 1, context);
    assert.equal(server.events("peer_address_changed").length, 0, context);
  },
});
