/**
 * Load held: many concurrent real clients on loopback complete their
 * handshakes and exchange messages with no errors; the server's state is back
 * to empty once they leave. The count is LOAD_CLIENTS (default 1,000), the
 * server's socket backend LOAD_IO (`deno` or `libc`; unset: each that runs
 * here); the idle memory measurement is `deno task load:idle`.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { KEY } from "../helpers/sim.ts";
import type { SocketIo } from "../../src/net/datagram_socket.ts";
import { socketBackends } from "../helpers/libc.ts";

const CLIENTS = Number(Deno.env.get("LOAD_CLIENTS") ?? "1000");
const chosen = Deno.env.get("LOAD_IO");
const IOS: readonly SocketIo[] = chosen === "libc" || chosen === "deno"
  ? [chosen]
  : socketBackends("load test");

for (const IO of IOS) {
  Deno.test(`load: ${CLIENTS} concurrent clients complete handshakes and exchange messages (${IO} socket)`, async () => {
    const log = new MemoryLogger();
    const server = new DtlsServer({
      io: IO,
      port: 0,
      logger: log,
      // Every client comes from 127.0.0.1: the per-address limit is for the Internet.
      handshakeRate: 0,
      maxHalfOpen: CLIENTS,
    });
    const { port } = server.listen();
    const clients = Array.from(
      { length: CLIENTS },
      (_, i) => new DtlsClient({ hostname: "127.0.0.1", port, identity: `client ${i}`, psk: KEY }),
    );
    try {
      await Promise.all(clients.map((c) => c.connect(60_000)));
      assert.equal(server.connectionCount, CLIENTS);
      await Promise.all(clients.map(async (c, i) => {
        // Loopback UDP drops datagrams under a burst like this one; a message
        // is repeated until answered (each repeat is a new record).
        for (let attempt = 0; attempt < 30; attempt++) {
          c.send(`hello from ${i}`);
          try {
            const reply = new TextDecoder().decode(await c.receive(1_000));
            assert.equal(reply, `to (127.0.0.1:${c.localPort}): ACK`);
            return;
          } catch {
            // lost: again
          }
        }
        assert.fail(`client ${i} got no answer`);
      }));
      const errors = log.entries.filter((e) =>
        e.event === "alert_sent" || e.event === "internal_error" || e.event === "handshake_refused"
      );
      assert.deepEqual(errors, []);
      assert.equal(log.entries.filter((e) => e.event === "handshake_complete").length, CLIENTS);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  });
}
