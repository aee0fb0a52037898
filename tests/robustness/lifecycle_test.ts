/**
 * The ends of connections on a live server: a client restarting on the same
 * port (RFC 6347 §4.2.8), close_notify to every peer on shutdown, and a peer
 * that vanishes without a word, evicted by the idle timeout.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { HostilePeer } from "../helpers/hostile_peer.ts";
import { KEY } from "../helpers/sim.ts";

Deno.test("lifecycle: a client restarting on the same port gets a new connection after its cookie", async () => {
  const log = new MemoryLogger();
  const server = new DtlsServer({ port: 0, logger: log });
  const { port } = server.listen();
  const peer = HostilePeer.open(port);
  try {
    const first = peer.connect({}, "first life");
    await peer.until(() => first.isEstablished, "first handshake");
    // The process restarts: same socket, fresh state, no close_notify.
    const second = peer.connect({}, "second life");
    await peer.until(() => second.isEstablished, "second handshake");
    assert.equal(server.connectionCount, 1);
    assert.ok(log.entries.some((e) => e.event === "connection_replaced" && e.peer === peer.key));
    second.send(new TextEncoder().encode("after restart"));
    peer.flush();
    await peer.until(() => peer.events.some((e) => e.type === "data"), "reply");
  } finally {
    await peer.close();
    await server.close();
  }
});

Deno.test("lifecycle: close_notify on shutdown reaches every peer", async () => {
  const server = new DtlsServer({ port: 0, logger: new MemoryLogger() });
  const { port } = server.listen();
  const clients = Array.from(
    { length: 50 },
    (_, i) => new DtlsClient({ hostname: "127.0.0.1", port, identity: `c${i}`, psk: KEY }),
  );
  try {
    await Promise.all(clients.map((c) => c.connect(10_000)));
    await server.close();
    await Promise.all(clients.map((c) => c.receive(5_000).catch(() => {})));
    assert.deepEqual(
      clients.map((c) => c.closedReason),
      clients.map(() => "close_notify received"),
    );
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  }
});

Deno.test("lifecycle: a peer that vanishes is evicted by the idle timeout", async () => {
  let now = Date.now();
  const log = new MemoryLogger();
  const server = new DtlsServer({
    port: 0,
    logger: log,
    clock: () => now,
    idleTimeoutMs: 60_000,
  });
  const { port } = server.listen();
  const vanishing = HostilePeer.open(port);
  const staying = new DtlsClient({ hostname: "127.0.0.1", port, identity: "stays", psk: KEY });
  try {
    const c = vanishing.connect();
    await vanishing.until(() => c.isEstablished, "handshake");
    await staying.connect(5_000);
    await vanishing.close(); // gone: no close_notify, no more datagrams
    assert.equal(server.connectionCount, 2);
    now += 59_000;
    staying.send("still here");
    await staying.receive(5_000);
    now += 2_000;
    // The server's next tick (100 ms) sees the vanished peer idle for 61 s.
    const deadline = Date.now() + 5_000;
    while (server.connectionCount > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(server.connectionCount, 1);
    assert.ok(
      log.entries.some((e) =>
        e.event === "connection_closed" && e.peer === vanishing.key && e.reason === "idle timeout"
      ),
    );
    staying.send("and here");
    await staying.receive(5_000);
  } finally {
    await staying.close();
    await server.close();
  }
});
