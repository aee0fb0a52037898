/**
 * The server shell on real sockets, driven by our own client.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { DtlsServer, peerKey, PeerKeys } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { mapPskStore, parseHexKey } from "../../src/server/psk_store.ts";
import type { SocketIo } from "../../src/net/datagram_socket.ts";
import { libcUnavailable } from "../helpers/libc.ts";
import { withServer } from "../helpers/in_process_server.ts";

const DEMO_KEY = parseHexKey("1a2b3c4d5e6f", "demo key");

/** Both socket backends; libc only where FFI works here (the reason is printed otherwise). */
const IOS: readonly SocketIo[] = ["deno", "libc"];
function skip(io: SocketIo): boolean {
  if (io !== "libc") return false;
  const reason = libcUnavailable();
  if (reason !== undefined) console.log(`skipping the libc socket tests: ${reason}`);
  return reason !== undefined;
}

for (const io of IOS) {
  Deno.test(
    `Qt example behaviour over IPv4 (${io} socket): ACK reply, logs, close_notify on shutdown`,
    {
      ignore: skip(io),
    },
    async () => {
      const log = new MemoryLogger();
      const server = new DtlsServer({ port: 0, logger: log, io });
      const { port } = server.listen();
      assert.equal(server.isListening, true);
      const client = new DtlsClient({
        hostname: "127.0.0.1",
        port,
        identity: "Alice (clone number 1)",
        psk: DEMO_KEY,
      });
      try {
        const session = await client.connect(5_000);
        assert.equal(session.version, "DTLS 1.2");
        client.send("Message #1");
        const reply = new TextDecoder().decode(await client.receive(5_000));
        assert.equal(reply, `to (127.0.0.1:${client.localPort}): ACK`);

        const datagram = log.entries.find((e) => e.event === "datagram");
        assert.ok(datagram, "datagram logged");
        assert.equal(datagram.plaintext, "Message #1");
        assert.match(String(datagram.ciphertext), /^17fefd0001[0-9a-f]+$/);
        assert.equal(datagram.peer, `127.0.0.1:${client.localPort}`);
        const identity = log.entries.find((e) => e.event === "psk_identity");
        assert.equal(identity?.identity, "Alice (clone number 1)");
        for (
          const event of [
            "listening",
            "cookie_sent",
            "cookie_verified",
            "handshake_started",
            "handshake_complete",
          ]
        ) {
          assert.ok(log.entries.some((e) => e.event === event), `${event} logged`);
        }
        assert.equal(server.connectionCount, 1);
      } finally {
        await server.close();
      }
      assert.equal(server.isListening, false);
      await client.receive(2_000).catch(() => {});
      assert.equal(client.closedReason, "close_notify received");
      await client.close();
      assert.ok(log.entries.some((e) => e.event === "shutdown" && e.peers === 1));
    },
  );

  Deno.test(`IPv6 loopback (${io} socket)`, { ignore: skip(io) }, async () => {
    await withServer({ address: "::1", io }, async (_server, port) => {
      const client = new DtlsClient({ hostname: "::1", port, identity: "v6", psk: DEMO_KEY });
      try {
        await client.connect(5_000);
        client.send("over v6");
        const reply = new TextDecoder().decode(await client.receive(5_000));
        assert.equal(reply, `to (::1:${client.localPort}): ACK`);
      } finally {
        await client.close();
      }
    });
  });
}

Deno.test("a close_notify from the peer removes its connection", async () => {
  await withServer({}, async (server, port, log) => {
    const client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "c", psk: DEMO_KEY });
    await client.connect(5_000);
    assert.equal(server.connectionCount, 1);
    await client.close();
    for (let i = 0; i < 50 && server.connectionCount > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(server.connectionCount, 0);
    assert.ok(
      log.entries.some((e) =>
        e.event === "connection_closed" && e.reason === "close_notify received"
      ),
    );
  });
});

Deno.test("the application callback answers each datagram", async () => {
  const onDatagram = (data: Uint8Array) => new TextDecoder().decode(data).toUpperCase();
  await withServer({ onDatagram }, async (_server, port) => {
    const client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "c", psk: DEMO_KEY });
    try {
      await client.connect(5_000);
      client.send("shout");
      assert.equal(new TextDecoder().decode(await client.receive(5_000)), "SHOUT");
    } finally {
      await client.close();
    }
  });
});

Deno.test("with a key file an unknown identity is refused as a wrong key is (bad_record_mac)", async () => {
  const psk = mapPskStore(new Map([["alice", parseHexKey("00112233", "k")]]));
  await withServer({ psk }, async (_server, port, log) => {
    const mallory = new DtlsClient({
      hostname: "127.0.0.1",
      port,
      identity: "mallory",
      psk: DEMO_KEY,
    });
    await assert.rejects(() => mallory.connect(5_000), /bad_record_mac/);
    const alice = new DtlsClient({
      hostname: "127.0.0.1",
      port,
      identity: "alice",
      psk: parseHexKey("00112233", "k"),
    });
    try {
      await alice.connect(5_000);
      alice.send("hi");
      await alice.receive(5_000);
    } finally {
      await alice.close();
    }
    assert.ok(
      !log.entries.some((e) => e.event === "datagram" && "plaintext" in e),
      "plaintext not logged with real keys",
    );
    assert.ok(!JSON.stringify(log.entries).includes("00112233"), "no key in logs");
  });
});

Deno.test("peer keys: the connection-table key of IPv4 and IPv6 addresses, remembered per port", () => {
  const keys = new PeerKeys();
  const at = (hostname: string, port: number): Deno.NetAddr => ({
    transport: "udp",
    hostname,
    port,
  });
  assert.equal(keys.of(at("192.0.2.1", 4433)), "192.0.2.1:4433");
  assert.equal(keys.of(at("192.0.2.1", 4433)), "192.0.2.1:4433");
  // Another host on the same port is another peer, and so is the first one coming back.
  assert.equal(keys.of(at("192.0.2.10", 4433)), "192.0.2.10:4433");
  assert.equal(keys.of(at("::1", 4433)), "[::1]:4433");
  assert.equal(keys.of(at("192.0.2.1", 4433)), "192.0.2.1:4433");
  assert.equal(keys.of(at("192.0.2.1", 4434)), "192.0.2.1:4434");
  for (const addr of [at("2001:db8::7", 1), at("10.0.0.1", 65535)]) {
    assert.equal(keys.of(addr), peerKey(addr));
  }
});

Deno.test("libc socket: the drop counter is exported, and a capped receive buffer is logged", {
  ignore: skip("libc"),
}, async () => {
  // More than any kernel grants (Linux: up to twice net.core.rmem_max, which only root can read here).
  const asked = 1 << 30;
  await withServer({ io: "libc", receiveBuffer: asked }, (server, _port, log) => {
    const listening = log.entries.find((e) => e.event === "listening")!;
    assert.equal(listening.io, "libc");
    const granted = listening.receiveBufferBytes as number;
    assert.ok(granted > 0 && granted < asked, `granted ${granted}`);
    const capped = log.entries.find((e) => e.event === "receive_buffer_capped");
    assert.deepEqual([capped?.asked, capped?.granted], [asked, granted]);
    assert.match(server.metrics.render(), /^dtls_socket_receive_drops_total 0$/m);
    return Promise.resolve();
  });
  // Deno's socket cannot tell: no sample rather than a zero that would claim it knows.
  await withServer({}, (server) => {
    assert.doesNotMatch(server.metrics.render(), /^dtls_socket_receive_drops_total /m);
    return Promise.resolve();
  });
});

Deno.test("the datagram line is bounded and escaped: 64 record bytes as hex, 256 characters of plaintext", async () => {
  await withServer({}, async (_server, port, log) => {
    const client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "big", psk: DEMO_KEY });
    const hostile = "\x1b[2J\nFAKE LINE ".repeat(300);
    try {
      await client.connect(5_000);
      client.send("short");
      await client.receive(5_000);
      client.send(hostile);
      await client.receive(5_000);
    } finally {
      await client.close();
    }
    const [short, big] = log.entries.filter((e) => e.event === "datagram");
    assert.ok(short && big, "two datagrams logged");
    assert.equal(short.plaintext, "short");
    assert.equal("truncated" in short, false, "nothing cut from a short record");

    assert.equal(big.bytes, hostile.length, "bytes: the full length");
    assert.match(String(big.ciphertext), /^17fefd0001[0-9a-f]{118}$/, "64 bytes of the record");
    assert.equal(big.truncated, true);
    const plaintext = String(big.plaintext);
    assert.ok(plaintext.startsWith("\\x1b[2J\\x0aFAKE LINE \\x1b[2J"), plaintext);
    assert.ok(!plaintext.includes("\x1b") && !plaintext.includes("\n"), "no raw ESC or newline");
    const cut = /…\(\+(\d+) more\)$/.exec(plaintext);
    assert.ok(cut, "says it was cut");
    assert.ok(cut.index <= 256, `at most 256 characters shown, got ${cut.index}`);
  });
});

Deno.test("the demo key logs plaintext by default only on a loopback address", async (t) => {
  async function plaintextLogged(options: ConstructorParameters<typeof DtlsServer>[0]) {
    let logged: unknown;
    await withServer(options, async (_server, port, log) => {
      const client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "c", psk: DEMO_KEY });
      try {
        await client.connect(5_000);
        client.send("payload");
        await client.receive(5_000);
      } finally {
        await client.close();
      }
      logged = log.entries.find((e) => e.event === "datagram")?.plaintext;
    });
    return logged;
  }
  await t.step("127.0.0.1: logged", async () => {
    assert.equal(await plaintextLogged({ address: "127.0.0.1" }), "payload");
  });
  await t.step("0.0.0.0 (as with --allow-demo-key): not logged", async () => {
    assert.equal(await plaintextLogged({ address: "0.0.0.0" }), undefined);
  });
  await t.step("0.0.0.0 with logPlaintext: logged", async () => {
    assert.equal(await plaintextLogged({ address: "0.0.0.0", logPlaintext: true }), "payload");
  });
  await t.step("127.0.0.1 with logPlaintext false: not logged", async () => {
    assert.equal(await plaintextLogged({ address: "127.0.0.1", logPlaintext: false }), undefined);
  });
});

Deno.test("a PSK identity with a leading BOM is another identity, not the one without", async () => {
  const key = parseHexKey("00112233", "k");
  await withServer({ psk: mapPskStore(new Map([["abc", key]])) }, async (_server, port) => {
    const bom = new DtlsClient({ hostname: "127.0.0.1", port, identity: "\uFEFFabc", psk: key });
    try {
      await assert.rejects(() => bom.connect(5_000), /bad_record_mac/);
    } finally {
      await bom.close();
    }
    const plain = new DtlsClient({ hostname: "127.0.0.1", port, identity: "abc", psk: key });
    try {
      await plain.connect(5_000);
    } finally {
      await plain.close();
    }
  });
});
