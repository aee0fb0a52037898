/**
 * The libc socket backend against Deno's own UDP sockets on loopback: what
 * one sends the other receives, with the same peer addresses. Skipped, with
 * the reason printed, where FFI is not available.
 */
import assert from "node:assert/strict";
import { LibcDatagramSocket, LibcPoller } from "../../src/net/libc/mod.ts";
import { libcUnavailable } from "../helpers/libc.ts";

const reason = libcUnavailable();
if (reason !== undefined) console.log(`skipping the libc socket tests: ${reason}`);
const ignore = reason !== undefined;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A libc socket that answers each datagram with `echo: <text>`, and what it saw. */
function echoServer(hostname: string) {
  const socket = LibcDatagramSocket.bind(hostname, 0);
  const seen: Deno.NetAddr[] = [];
  const errors: unknown[] = [];
  const served = socket.serve((datagram, from) => {
    seen.push(from);
    socket.send(encoder.encode(`echo: ${decoder.decode(datagram)}`), from, (e) => errors.push(e));
  }, (e) => errors.push(e));
  return { socket, seen, errors, served };
}

Deno.test("libc socket: echoes to Deno sockets over IPv4 and IPv6, naming peers as Deno does", {
  ignore,
}, async () => {
  for (const hostname of ["127.0.0.1", "::1"]) {
    const server = echoServer(hostname);
    assert.equal(server.socket.addr.hostname, hostname);
    assert.ok(server.socket.addr.port > 0);
    const client = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
    try {
      await client.send(encoder.encode("hi"), server.socket.addr);
      const [reply, from] = await client.receive();
      assert.equal(decoder.decode(reply), "echo: hi");
      assert.deepEqual({ ...from }, { ...server.socket.addr });
      // The same object for every datagram of one peer: no allocation per datagram.
      await client.send(encoder.encode("again"), server.socket.addr);
      await client.receive();
      assert.deepEqual({ ...server.seen[0] }, { ...client.addr });
      assert.equal(server.seen[1], server.seen[0]);
      assert.deepEqual(server.errors, []);
    } finally {
      client.close();
      server.socket.close();
      await server.served;
    }
  }
});

Deno.test("libc socket: thousands of datagrams in bursts under GC pressure all come back intact", {
  ignore,
}, async () => {
  // A prototype with its buffers in separate arrays got EFAULT from recvmmsg
  // after ~1,600 datagrams, once collections had run: twice that, with garbage.
  const server = echoServer("127.0.0.1");
  const clients = Array.from(
    { length: 8 },
    () => Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 }),
  );
  try {
    let garbage: unknown[] = [];
    for (let round = 0; round < 400; round++) {
      await Promise.all(
        clients.map((c, i) => c.send(encoder.encode(`${round}/${i}`), server.socket.addr)),
      );
      for (let k = 0; k < 2_000; k++) garbage.push({ k, s: `x${k}` });
      if (garbage.length > 50_000) garbage = [];
      const replies = await Promise.all(clients.map((c) => c.receive()));
      replies.forEach(([data], i) => assert.equal(decoder.decode(data), `echo: ${round}/${i}`));
    }
    assert.equal(server.seen.length, 3_200);
    assert.deepEqual(server.errors, []);
  } finally {
    for (const c of clients) c.close();
    server.socket.close();
    await server.served;
  }
});

Deno.test("libc socket: a datagram longer than a slot is reported, and the next one arrives", {
  ignore,
}, async () => {
  const sizes = { receiveSlots: 2, receiveSlotBytes: 100, sendSlots: 2, sendBytes: 200 };
  const socket = LibcDatagramSocket.bind("127.0.0.1", 0, sizes);
  const received: string[] = [];
  const errors: string[] = [];
  const served = socket.serve(
    (d) => received.push(decoder.decode(d)),
    (e) => errors.push((e as Error).message),
  );
  const client = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await client.send(new Uint8Array(101), socket.addr);
    await client.send(encoder.encode("fits"), socket.addr);
    for (let i = 0; i < 100 && received.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(received, ["fits"]);
    assert.deepEqual(errors, ["Cannot receive: datagram longer than 100 bytes"]);
    // Too long to send at all: reported, not thrown.
    socket.send(
      new Uint8Array(201),
      client.addr as Deno.NetAddr,
      (e) => errors.push((e as Error).message),
    );
    assert.equal(errors[1], "Cannot send: datagram of 201 bytes");
  } finally {
    client.close();
    socket.close();
    await served;
  }
});

Deno.test("libc socket: clear errors for a busy port, a host name and a send after close", {
  ignore,
}, async () => {
  const first = LibcDatagramSocket.bind("127.0.0.1", 0);
  const port = first.addr.port;
  assert.throws(
    () => LibcDatagramSocket.bind("127.0.0.1", port),
    new RegExp(
      `^Error: Cannot bind 127\\.0\\.0\\.1:${port}: Address already in use \\(errno 98\\)$`,
    ),
  );
  assert.throws(
    () => LibcDatagramSocket.bind("example.com", 0),
    /"example.com" is not an IP address/,
  );
  const served = first.serve(() => {}, () => {});
  first.close();
  await served; // resolves once closed
  const errors: string[] = [];
  first.send(
    new Uint8Array(1),
    { transport: "udp", hostname: "127.0.0.1", port },
    (e) => errors.push((e as Error).message),
  );
  assert.deepEqual(errors, ["Cannot send: socket closed"]);
  // The port is free again.
  LibcDatagramSocket.bind("127.0.0.1", port).close();
});

Deno.test("libc socket: an IPv4 socket refuses an IPv6 destination; an IPv6 one maps IPv4", {
  ignore,
}, async () => {
  const v4 = LibcDatagramSocket.bind("127.0.0.1", 0);
  const errors: string[] = [];
  v4.send(
    new Uint8Array(1),
    { transport: "udp", hostname: "::1", port: 9 },
    (e) => errors.push((e as Error).message),
  );
  assert.deepEqual(errors, ["Cannot send to ::1: not an address of this socket's family"]);
  v4.close();
  // A dual-stack socket on "::" reaches an IPv4 peer through its mapped address.
  const v6 = LibcDatagramSocket.bind("::", 0);
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    v6.send(encoder.encode("mapped"), peer.addr as Deno.NetAddr, (e) => errors.push(String(e)));
    const [data] = await peer.receive();
    assert.equal(decoder.decode(data), "mapped");
    assert.equal(errors.length, 1);
  } finally {
    peer.close();
    v6.close();
  }
});

Deno.test("libc poller: one poll for many sockets; closing one leaves the others serving", {
  ignore,
}, async () => {
  const poller = new LibcPoller();
  const running = poller.run();
  const sockets = Array.from({ length: 5 }, () => LibcDatagramSocket.bind("127.0.0.1", 0));
  const got: string[][] = sockets.map(() => []);
  sockets.forEach((s, i) => s.serveOn(poller, (d) => got[i]!.push(decoder.decode(d)), () => {}));
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const settle = async (want: () => boolean) => {
    for (let i = 0; i < 200 && !want(); i++) await new Promise((r) => setTimeout(r, 5));
  };
  try {
    for (const [i, s] of sockets.entries()) await sender.send(encoder.encode(`to ${i}`), s.addr);
    await settle(() => got.every((g) => g.length === 1));
    assert.deepEqual(got, sockets.map((_, i) => [`to ${i}`]));
    sockets[2]!.close();
    for (const [i, s] of sockets.entries()) await sender.send(encoder.encode(`again ${i}`), s.addr);
    await settle(() => got.filter((g) => g.length === 2).length === 4);
    assert.deepEqual(got[2], ["to 2"]);
    assert.deepEqual(got[4], ["to 4", "again 4"]);
  } finally {
    sender.close();
    poller.close();
    await running;
  }
  // The poller closed the sockets it still watched: their ports are free.
  for (const s of sockets) LibcDatagramSocket.bind("127.0.0.1", s.addr.port).close();
});

Deno.test("libc socket: datagrams the kernel drops for a full buffer are counted, to the one", {
  ignore,
}, async () => {
  // A small receive buffer and nobody reading: most of a burst cannot be queued.
  const socket = LibcDatagramSocket.bind("127.0.0.1", 0, undefined, { receiveBuffer: 4_096 });
  assert.ok(socket.receiveBufferBytes >= 4_096 && socket.receiveBufferBytes < 65_536);
  const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const burst = 500;
  for (let i = 0; i < burst; i++) await sender.send(new Uint8Array(100), socket.addr);
  let received = 0;
  const served = socket.serve(() => received++, () => {});
  try {
    const settle = async (want: () => boolean) => {
      for (let i = 0; i < 200 && !want(); i++) await new Promise((r) => setTimeout(r, 5));
    };
    await settle(() => received > 0);
    await new Promise((r) => setTimeout(r, 50));
    const queued = received;
    assert.ok(queued > 0 && queued < burst, `${queued} of ${burst} queued`);
    // The kernel reports the count with the next datagram it queues.
    await sender.send(new Uint8Array(1), socket.addr);
    await settle(() => received === queued + 1);
    assert.equal(socket.receiveDrops, burst - queued, "every datagram not received was dropped");
  } finally {
    sender.close();
    socket.close();
    await served;
  }
});

Deno.test(
  "libc socket: closed from inside its own datagram callback, it closes its descriptors once",
  {
    ignore,
  },
  async () => {
    // A descriptor closed twice would close whatever the kernel gave its number
    // to in between: here the sockets bound right after (the lowest free numbers).
    const first = LibcDatagramSocket.bind("127.0.0.1", 0);
    const next: LibcDatagramSocket[] = [];
    const served = first.serve(() => {
      first.close();
      next.push(LibcDatagramSocket.bind("127.0.0.1", 0), LibcDatagramSocket.bind("127.0.0.1", 0));
    }, () => {});
    const sender = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      await sender.send(encoder.encode("close now"), first.addr);
      await served;
      assert.equal(next.length, 2);
      for (const socket of next) {
        const got: string[] = [];
        const errors: unknown[] = [];
        const servedNext = socket.serve((d) => got.push(decoder.decode(d)), (e) => errors.push(e));
        await sender.send(encoder.encode("still here"), socket.addr);
        for (let i = 0; i < 100 && got.length === 0; i++) {
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.deepEqual([got, errors.map(String)], [["still here"], []]);
        socket.close();
        await servedNext;
      }
    } finally {
      sender.close();
    }
  },
);

Deno.test("libc poller: a socket unwatched before any poll is closed, not leaked", {
  ignore,
}, async () => {
  const poller = new LibcPoller();
  const socket = LibcDatagramSocket.bind("127.0.0.1", 0);
  socket.serveOn(poller, () => {}, () => {});
  socket.close();
  const running = poller.run();
  await new Promise((r) => setTimeout(r, 20));
  // Its port is free again: the descriptor was closed.
  LibcDatagramSocket.bind("127.0.0.1", socket.addr.port).close();
  poller.close();
  await running;
});

Deno.test("libc socket: datagrams queued in a batch still leave when the socket closes in it", {
  ignore,
}, async () => {
  const socket = LibcDatagramSocket.bind("127.0.0.1", 0);
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const errors: unknown[] = [];
  const served = socket.serve((_d, from) => {
    socket.send(encoder.encode("goodbye"), from, (e) => errors.push(e));
    socket.close();
  }, (e) => errors.push(e));
  try {
    await peer.send(encoder.encode("hello"), socket.addr);
    const [reply] = await peer.receive();
    assert.equal(decoder.decode(reply), "goodbye");
    await served;
    assert.deepEqual(errors, []);
  } finally {
    peer.close();
  }
});
