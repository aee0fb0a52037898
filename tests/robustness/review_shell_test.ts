/**
 * Review of the server shell (src/server, src/net, src/cli): each test is one
 * finding and fails on the code as reviewed. Every wait is for an observable
 * condition (a reply on the wire, a log entry, a settled send), never a sleep.
 */
import assert from "node:assert/strict";
import { resetSync } from "@logtape/logtape";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { connectionConfig, createClientConnection } from "../../src/connection/endpoint.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { AlertLevel, encodeAlert } from "../../src/handshake/messages.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import {
  configureLogging,
  type LogLevel,
  LogtapeLogger,
  MemoryLogger,
} from "../../src/server/log.ts";
import { carries, HostilePeer } from "../helpers/hostile_peer.ts";
import { socketBackends } from "../helpers/libc.ts";
import { clientPsk, KEY } from "../helpers/sim.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const IOS = socketBackends("review shell tests");

/** A fresh ClientHello datagram (no cookie), as a client's first flight. */
function clientHello(): Uint8Array {
  const c = createClientConnection(
    connectionConfig(nodeProvider, (n) => crypto.getRandomValues(new Uint8Array(n))),
    clientPsk({}),
    Date.now(),
  );
  return c.pollTransmit()!.slice();
}

/** Every string anywhere in a log entry, joined. */
function entryText(entry: Record<string, unknown>): string {
  return Object.values(entry).map((v) => (typeof v === "string" ? v : JSON.stringify(v))).join(
    "\n",
  );
}

async function establish(peer: HostilePeer): Promise<void> {
  peer.connect();
  await peer.until(() => peer.connection?.isEstablished === true, "handshake");
}

/** Sends application data and waits for the server's reply (the server handles a peer in order). */
async function probe(peer: HostilePeer): Promise<void> {
  const replies = () => peer.events.filter((e) => e.type === "data").length;
  const before = replies();
  peer.connection!.send(encoder.encode("probe"));
  peer.flush();
  await peer.until(() => replies() > before, "reply to probe");
}

// ---- 1. spurious_read: a warning line per empty UDP datagram, from anyone -------------

for (const io of IOS) {
  Deno.test(`review shell (${io} socket): 0-byte datagrams do not each write a warning line`, async () => {
    const log = new MemoryLogger();
    const server = new DtlsServer({ port: 0, io, logger: log });
    const { port } = server.listen();
    const peer = HostilePeer.open(port);
    try {
      const hello = clientHello();
      // 4 rounds of 50 empty datagrams, each round fenced by a ClientHello
      // whose HelloVerifyRequest proves the server read the round (in order,
      // and never more than the socket buffer holds at once).
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 50; i++) await peer.sendRaw(new Uint8Array(0));
        const before = peer.received.length;
        await peer.sendRaw(hello);
        await peer.until(() => peer.received.length > before, "HelloVerifyRequest");
      }
      const warnings = log.entries.filter((e) => e.event === "spurious_read").length;
      // Cookie floods are held to 100 lines per interval; unauthenticated,
      // spoofable empty datagrams should be held at least as tightly.
      assert.ok(warnings <= 101, `${warnings} spurious_read lines for 200 empty datagrams`);
    } finally {
      await peer.close();
      await server.close();
    }
  });
}

// ---- 2. socket_error: an error line per spoofed ClientHello from port 0 ---------------

Deno.test("review shell (deno socket): send failures to a spoofed source are not logged once per datagram", async () => {
  // A ClientHello spoofed from source port 0 (any raw socket can send one;
  // confirmed live with a raw IP socket) gets a HelloVerifyRequest that the
  // kernel refuses to send (EINVAL): the server writes an error line for each,
  // while its own cookie_sent lines for the same flood are capped at 100.
  // The socket is Deno's, fed the spoofed datagrams; sends go to a real socket.
  const real = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const hello = clientHello();
  const from: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: 0 };
  const queue: Uint8Array[] = Array.from({ length: 300 }, () => hello);
  let settled = 0;
  let closed = false;
  let wake: (() => void) | undefined;
  const fake = {
    addr: { transport: "udp", hostname: "127.0.0.1", port: 9 } as Deno.NetAddr,
    async receive(buffer?: Uint8Array): Promise<[Uint8Array, Deno.Addr]> {
      while (queue.length === 0) {
        if (closed) throw new Deno.errors.BadResource("closed");
        await new Promise<void>((resolve) => (wake = resolve));
      }
      const d = queue.shift()!;
      const out = buffer ?? new Uint8Array(d.length);
      out.set(d);
      return [out.subarray(0, d.length), from];
    },
    send(d: Uint8Array, to: Deno.Addr): Promise<number> {
      return real.send(d, to).finally(() => settled++);
    },
    close() {
      closed = true;
      wake?.();
    },
  };
  const original = Deno.listenDatagram;
  (Deno as { listenDatagram: unknown }).listenDatagram = () => fake;
  const log = new MemoryLogger();
  const server = new DtlsServer({ port: 0, logger: log });
  try {
    server.listen();
  } finally {
    (Deno as { listenDatagram: unknown }).listenDatagram = original;
  }
  try {
    const deadline = Date.now() + 10_000;
    while (settled < 300) {
      if (Date.now() > deadline) throw new Error(`only ${settled} sends settled`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const cookieLines = log.entries.filter((e) => e.event === "cookie_sent").length;
    const errors = log.entries.filter((e) => e.event === "socket_error").length;
    assert.ok(cookieLines <= 100, "cookie_sent is throttled");
    assert.ok(errors <= 101, `${errors} socket_error lines for 300 spoofed datagrams`);
  } finally {
    await server.close();
    real.close();
  }
});

// ---- 3. per-record lines: one datagram of many records writes a warning per record ----

for (const io of IOS) {
  Deno.test(`review shell (${io} socket): one datagram of empty records does not write a warning per record`, async () => {
    const log = new MemoryLogger();
    const server = new DtlsServer({ port: 0, io, logger: log });
    const { port } = server.listen();
    const peer = HostilePeer.open(port);
    try {
      await establish(peer);
      peer.filter = () => "hold";
      for (let i = 0; i < 40; i++) peer.connection!.send(new Uint8Array(0));
      peer.flush();
      peer.filter = () => "send";
      const packed = new Uint8Array(peer.held.reduce((n, d) => n + d.length, 0));
      let at = 0;
      for (const d of peer.held.splice(0)) {
        packed.set(d, at);
        at += d.length;
      }
      await peer.sendRaw(packed);
      await probe(peer);
      const warnings = log.entries.filter((e) =>
        e.event === "empty_datagram" && e.peer === peer.key
      ).length;
      assert.ok(warnings <= 5, `${warnings} empty_datagram warnings from one datagram`);
    } finally {
      await peer.close();
      await server.close();
    }
  });
}

// ---- 4. debug lines: one datagram of junk records writes a debug line per record ------

Deno.test("review shell (deno socket): at debug level, one datagram of junk records does not write a line per record", async () => {
  const log = new MemoryLogger(); // writes every level, as --log-level debug does
  const server = new DtlsServer({ port: 0, logger: log });
  const { port } = server.listen();
  const peer = HostilePeer.open(port);
  try {
    await establish(peer);
    // Records in epoch 1 that do not authenticate: anyone who can spoof the
    // peer's address can send these, 40 to a datagram.
    const junk = Array.from(
      { length: 40 },
      (_, i) =>
        encodeRecord(
          ContentType.ApplicationData,
          DTLS_1_2,
          1,
          1_000 + i,
          crypto.getRandomValues(new Uint8Array(24)),
        ),
    );
    const packed = new Uint8Array(junk.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const r of junk) {
      packed.set(r, at);
      at += r.length;
    }
    await peer.sendRaw(packed);
    await probe(peer);
    const lines = log.entries.filter((e) => e.event === "record_dropped" && e.peer === peer.key)
      .length;
    assert.ok(lines <= 5, `${lines} record_dropped lines from one datagram`);
  } finally {
    await peer.close();
    await server.close();
  }
});

// ---- 5. handler errors: peer data in the error message makes unbounded JSON lines -----

Deno.test("review shell: a handler error carrying the peer's payload is bounded in the JSON log", async () => {
  const lines: string[] = [];
  configureLogging({ format: "json", level: "info", write: (line) => lines.push(line) });
  const server = new DtlsServer({
    port: 0,
    logger: new LogtapeLogger(),
    logPlaintext: false,
    // An ordinary handler that names what it did not understand.
    onDatagram: (data) => {
      throw new Error(`unknown command: ${decoder.decode(data)}`);
    },
  });
  const { port } = server.listen();
  const client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "x", psk: KEY });
  try {
    await client.connect(5_000);
    client.send("A".repeat(12_000));
    await assert.rejects(() => client.receive(5_000), /internal_error/);
    const longest = Math.max(...lines.map((l) => l.length));
    const events = lines.filter((l) => l.length > 4_096).map((l) => JSON.parse(l).event);
    assert.ok(longest <= 4_096, `a ${longest}-character log line (${events.join(", ")})`);
  } finally {
    await client.close();
    await server.close();
    resetSync();
  }
});

// ---- 6. handler errors: plaintext reaches the log with plaintext logging off ----------

Deno.test("review shell: a handler error does not put the payload in the log when plaintext logging is off", async () => {
  const log = new MemoryLogger();
  const server = new DtlsServer({
    port: 0,
    logger: log,
    logPlaintext: false,
    // The commonest handler there is: V8's JSON.parse error quotes its input.
    onDatagram: (data) => JSON.stringify(JSON.parse(decoder.decode(data))),
  });
  const { port } = server.listen();
  const client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "x", psk: KEY });
  try {
    await client.connect(5_000);
    client.send("pin=4711"); // not JSON: the error quotes it
    await assert.rejects(() => client.receive(5_000), /internal_error/);
    await new Promise<void>((resolve) => {
      const check = () =>
        log.entries.some((e) => e.event === "connection_closed")
          ? resolve()
          : setTimeout(check, 10);
      check();
    });
    const leaks = log.entries.filter((e) => entryText(e).includes("4711")).map((e) => e.event);
    assert.deepEqual(leaks, [], "log entries holding the plaintext");
  } finally {
    await client.close();
    await server.close();
  }
});

// ---- 7. metrics: each unknown alert description a peer sends is a new series ---------

Deno.test("review shell: unknown alert descriptions from peers do not each make a metric series", async () => {
  const log = new MemoryLogger();
  const server = new DtlsServer({ port: 0, logger: log });
  const { port } = server.listen();
  try {
    for (let i = 0; i < 6; i++) {
      const peer = HostilePeer.open(port);
      try {
        // Hold flight 5, so the server still reads epoch 0 when the alert comes.
        peer.filter = (d) => (carries(d, ContentType.ChangeCipherSpec) ? "hold" : "send");
        peer.connect();
        await peer.until(() => peer.held.length > 0, "flight 5");
        await peer.sendRaw(
          peer.rawRecord(ContentType.Alert, encodeAlert(AlertLevel.Fatal, 200 + i)),
        );
        await peer.until(
          () => log.entries.some((e) => e.event === "connection_closed" && e.peer === peer.key),
          "connection closed",
        );
      } finally {
        await peer.close();
      }
    }
    const series = server.metrics.render().split("\n").filter((l) =>
      /^dtls_handshakes_failed_total\{reason="peer_alert_\d+"\}/.test(l)
    );
    assert.ok(series.length <= 1, `series made by peers:\n${series.join("\n")}`);
  } finally {
    await server.close();
  }
});

// ---- 8. a connection replaced by a new handshake vanishes without a closed line -------

Deno.test("review shell: a connection replaced by a new handshake from the same address is logged as closed", async () => {
  const log = new MemoryLogger();
  const server = new DtlsServer({ port: 0, logger: log });
  const { port } = server.listen();
  const peer = HostilePeer.open(port);
  try {
    await establish(peer);
    const first = peer.connection!;
    await establish(peer); // a restarted client: new ClientHello from the same port
    assert.notEqual(peer.connection, first);
    assert.ok(log.entries.some((e) => e.event === "connection_replaced" && e.peer === peer.key));
    assert.equal(server.connectionCount, 1);
    const closed = log.entries.filter((e) =>
      e.event === "connection_closed" && e.peer === peer.key
    );
    assert.equal(closed.length, 1, "the replaced connection's end is logged (and counted)");
  } finally {
    await peer.close();
    await server.close();
  }
});

// ---- 9. a logger failing on a throttle summary stops every peer's timers ---------------

Deno.test("review shell: a logger that fails on a refusal summary does not stop timeouts for every peer", async () => {
  let now = 1_000_000;
  let throws = 0;
  const inner = new MemoryLogger();
  const logger = {
    log(level: LogLevel, event: string, msg: string, fields?: Record<string, unknown>) {
      if (fields !== undefined && "suppressed" in fields) {
        throws++;
        throw new Error("log sink failed");
      }
      inner.log(level, event, msg, fields);
    },
  };
  const server = new DtlsServer({
    port: 0,
    logger,
    clock: () => now,
    refusalLogIntervalMs: 1_000,
    handshakeTimeoutMs: 1_000,
  });
  const { port } = server.listen();
  const old = HostilePeer.open(port);
  const peer = HostilePeer.open(port);
  try {
    // Two ClientHellos offering DTLS 1.0: protocol_version twice, the second suppressed.
    const hello = clientHello();
    hello[25] = 0xfe;
    hello[26] = 0xff;
    await old.sendRaw(hello, hello);
    await old.until(() => old.received.length >= 2, "two protocol_version alerts");
    // A handshake left half-open: flight 5 never leaves.
    peer.filter = (d) => (carries(d, ContentType.ChangeCipherSpec) ? "hold" : "send");
    peer.connect();
    await peer.until(() => peer.held.length > 0, "flight 5");
    assert.equal(server.connectionCount, 1);
    now += 5_000; // past the refusal interval and the handshake deadline
    await peer.until(
      () => server.connectionCount === 0 || throws >= 3,
      "handshake timeout or three failed ticks",
    );
    assert.equal(server.connectionCount, 0, "the half-open handshake timed out");
  } finally {
    await old.close();
    await peer.close();
    await server.close();
  }
});
