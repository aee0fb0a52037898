/**
 * The catalogue of bad inputs: each case is fed to a live server on loopback
 * by a hostile peer while a bystander client keeps a conversation going. Each
 * test checks the server's answer (silence, or the named alert) and that the
 * bystander saw nothing but its own replies.
 *
 * The cases come from published DTLS state-machine bugs: Fiterau-Broștean et
 * al., "Analysis of DTLS Implementations Using Protocol State Fuzzing" (USENIX
 * Security 2020), and the tinydtls, pion, OpenSSL and GnuTLS reports that
 * followed (early ChangeCipherSpec, Finished without ChangeCipherSpec,
 * application data before the handshake, renegotiation, bad fragments).
 *
 * "Silent" is checked without waiting for nothing: after the bad input the
 * peer does something valid and waits for its answer; the server handles a
 * peer's datagrams in order, so no alert and an intact connection by then
 * means the bad input was dropped.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { mapPskStore } from "../../src/server/psk_store.ts";
import { encodeHandshakeMessage } from "../../src/handshake/fragments.ts";
import {
  AlertDescription,
  AlertLevel,
  encodeAlert,
  encodeClientHello,
  encodePskClientKeyExchange,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import { carries, HostilePeer, splitRecords } from "../helpers/hostile_peer.ts";
import { IDENTITY, KEY } from "../helpers/sim.ts";
import { socketBackends } from "../helpers/libc.ts";
import type { SocketIo } from "../../src/net/datagram_socket.ts";

const text = new TextEncoder();
const IDENTITY_TEXT = new TextDecoder().decode(IDENTITY);

interface Live {
  readonly server: DtlsServer;
  readonly log: MemoryLogger;
  readonly peer: HostilePeer;
}

/** A bystander that exchanges messages with the server until told to stop. */
class Bystander {
  readonly client: DtlsClient;
  replies = 0;
  #stop = false;
  #loop: Promise<void> | undefined;

  constructor(port: number) {
    this.client = new DtlsClient({ hostname: "127.0.0.1", port, identity: "bystander", psk: KEY });
  }

  async start(): Promise<void> {
    await this.client.connect(5_000);
    this.#loop = (async () => {
      for (let i = 0; !this.#stop; i++) {
        this.client.send(`bystander #${i}`);
        const reply = new TextDecoder().decode(await this.client.receive(5_000));
        assert.equal(reply, `to (127.0.0.1:${this.client.localPort}): ACK`);
        this.replies++;
        // A steady conversation, not a busy loop competing with the case.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    // At least one exchange before the case starts.
    while (this.replies === 0) await Promise.race([this.#loop, tick()]);
  }

  /** Stops the conversation after one more reply; throws if it was disturbed. */
  async stop(): Promise<void> {
    const before = this.replies;
    while (this.replies === before) {
      await Promise.race([this.#loop, tick()]);
    }
    this.#stop = true;
    await this.#loop;
    const disturbed = this.client.events.filter((e) =>
      e.type === "alert" || e.type === "closed" || e.type === "dropped"
    );
    assert.deepEqual(disturbed, [], "the bystander saw no alert, drop or close");
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}

/** Both socket backends where FFI works here; Deno's alone otherwise (the reason is printed). */
const IOS = socketBackends("catalogue");

/** Registers a case once per socket backend. */
function catalogue(name: string, body: (ctx: Live) => Promise<void>): void {
  for (const io of IOS) Deno.test(`catalogue (${io} socket): ${name}`, () => live(io, body));
}

/** Runs a case against a live server with a bystander conversation around it. */
async function live(io: SocketIo, body: (ctx: Live) => Promise<void>): Promise<void> {
  const log = new MemoryLogger();
  const server = new DtlsServer({
    io,
    port: 0,
    logger: log,
    logPlaintext: true,
    psk: mapPskStore(new Map([[IDENTITY_TEXT, KEY], ["bystander", KEY]])),
  });
  const { port } = server.listen();
  const bystander = new Bystander(port);
  const peer = HostilePeer.open(port);
  try {
    await bystander.start();
    await body({ server, log, peer });
    await bystander.stop();
    const key = `127.0.0.1:${bystander.client.localPort}`;
    const trouble = log.entries.filter((e) =>
      e.peer === key && (e.event === "alert_sent" || e.event === "connection_closed")
    );
    assert.deepEqual(trouble, [], "the server sent the bystander nothing but replies");
  } finally {
    await peer.close();
    await bystander.client.close();
    await server.close();
  }
}

/** Alerts the server logged as sent to this peer. */
function alertsSentTo(log: MemoryLogger, peer: HostilePeer): string[] {
  return log.entries.flatMap((e) =>
    e.event === "alert_sent" && e.peer === peer.key ? [String(e.description)] : []
  );
}

/** Waits for the server to send this peer the alert `name`, and for nothing else. */
async function expectAlert(log: MemoryLogger, peer: HostilePeer, name: string): Promise<void> {
  await peer.until(() => alertsSentTo(log, peer).length > 0, `alert ${name}`);
  assert.deepEqual(alertsSentTo(log, peer), [name]);
  await peer.until(() => peer.alertsReceived().includes(name), `${name} on the wire`);
}

/** Runs the handshake until the peer's flight 5 (ClientKeyExchange, CCS, Finished) is held back. */
async function holdFlight5(peer: HostilePeer, overrides = {}): Promise<Uint8Array[]> {
  peer.filter = (d) => (carries(d, ContentType.ChangeCipherSpec) ? "hold" : "send");
  peer.connect(overrides);
  await peer.until(() => peer.held.length > 0, "flight 5");
  peer.filter = () => "send";
  const records = peer.held.flatMap(splitRecords);
  assert.deepEqual(records.map((r) => r[0]), [22, 20, 22], "ClientKeyExchange, CCS, Finished");
  return records;
}

/** Completes a handshake. */
async function establish(peer: HostilePeer, overrides = {}): Promise<void> {
  peer.connect(overrides);
  await peer.until(() => peer.connection!.isEstablished, "handshake");
}

/** Sends application data and waits for the server's ACK; returns the ACKs received. */
async function probe(peer: HostilePeer, message = "probe"): Promise<number> {
  const acks = () => peer.events.filter((e) => e.type === "data").length;
  const before = acks();
  peer.connection!.send(text.encode(message));
  peer.flush();
  await peer.until(() => acks() > before, `reply to ${message}`);
  return acks();
}

/** Asserts the bad input was dropped: no alert either way, connection intact and answering. */
async function expectSilence(log: MemoryLogger, peer: HostilePeer): Promise<void> {
  await probe(peer);
  assert.deepEqual(alertsSentTo(log, peer), []);
  assert.deepEqual(peer.alertsReceived(), []);
  assert.equal(peer.connection!.isEstablished, true);
}

/** The peer's next application record, sealed but not sent. */
function sealed(peer: HostilePeer, message: string): Uint8Array {
  peer.filter = () => "hold";
  peer.connection!.send(text.encode(message));
  peer.flush();
  peer.filter = () => "send";
  return peer.held.pop()!;
}

function dataFrom(log: MemoryLogger, peer: HostilePeer): string[] {
  return log.entries.flatMap((e) =>
    e.event === "datagram" && e.peer === peer.key ? [String(e.plaintext)] : []
  );
}

// ---- records -----------------------------------------------------------------

catalogue("a truncated record header is dropped silently", async ({ log, peer }) => {
  await establish(peer);
  await peer.sendRaw(sealed(peer, "cut").subarray(0, 7));
  await expectSilence(log, peer);
});

catalogue(
  "a record length past the end of the datagram is dropped silently",
  async ({ log, peer }) => {
    await establish(peer);
    const record = sealed(peer, "short");
    await peer.sendRaw(record.subarray(0, record.length - 5));
    await expectSilence(log, peer);
    assert.deepEqual(dataFrom(log, peer), ["probe"]);
  },
);

catalogue("zero-length records are dropped silently", async ({ log, peer }) => {
  await establish(peer);
  const empty = new Uint8Array(0);
  await peer.sendRaw(
    encodeRecord(ContentType.ApplicationData, DTLS_1_2, 1, 500, empty),
    encodeRecord(ContentType.Handshake, DTLS_1_2, 1, 501, empty),
    peer.rawRecord(ContentType.Handshake, empty),
    peer.rawRecord(ContentType.Alert, empty),
  );
  await expectSilence(log, peer);
});

catalogue("an unknown content type in epoch 0 is dropped silently", async ({ log, peer }) => {
  await establish(peer);
  await peer.sendRaw(peer.rawRecord(99, text.encode("what is this")));
  await expectSilence(log, peer);
});

catalogue(
  "an authenticated record of unknown content type gets unexpected_message",
  async ({ log, peer }) => {
    await establish(peer);
    peer.connection!.injectRecord(99, text.encode("what is this"));
    peer.flush();
    await expectAlert(log, peer, "unexpected_message");
  },
);

catalogue("a record with a wrong version field is dropped silently", async ({ log, peer }) => {
  await establish(peer);
  for (const version of [0x0303, 0xfeff, 0x0000, 0xfefc]) {
    const record = sealed(peer, "wrong version");
    record[1] = version >> 8;
    record[2] = version & 0xff;
    await peer.sendRaw(record);
  }
  await expectSilence(log, peer);
  assert.deepEqual(dataFrom(log, peer), ["probe"]);
});

catalogue(
  "a ClientHello in a TLS (not DTLS) record gets no HelloVerifyRequest",
  async ({ log, peer }) => {
    const hello = encodeClientHello({
      clientVersion: DTLS_1_2,
      random: new Uint8Array(32).fill(3),
      sessionId: new Uint8Array(0),
      cookie: new Uint8Array(0),
      cipherSuites: [0x00a8],
      compressionMethods: new Uint8Array([0]),
      extensions: [],
    });
    await peer.sendRaw(
      encodeRecord(
        ContentType.Handshake,
        0x0303,
        0,
        0,
        encodeHandshakeMessage(HandshakeType.ClientHello, 0, hello),
      ),
    );
    // A proper one afterwards is answered: the first was dropped, not queued.
    await establish(peer);
    assert.equal(
      log.entries.filter((e) => e.event === "cookie_sent" && e.peer === peer.key).length,
      1,
    );
  },
);

catalogue(
  "garbage after a valid record is dropped and the record delivered once",
  async ({ log, peer }) => {
    await establish(peer);
    const record = sealed(peer, "with trailer");
    const datagram = new Uint8Array(record.length + 20);
    datagram.set(record);
    datagram.fill(0xee, record.length);
    await peer.sendRaw(datagram);
    await expectSilence(log, peer);
    assert.deepEqual(dataFrom(log, peer), ["with trailer", "probe"]);
  },
);

// ---- handshake fragments ---------------------------------------------------------

catalogue(
  "fragments with inconsistent message_length get illegal_parameter",
  async ({ log, peer }) => {
    await holdFlight5(peer);
    const body = new Uint8Array(10).fill(1);
    await peer.sendRaw(
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 40, 0, body),
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 50, 10, body),
    );
    await expectAlert(log, peer, "illegal_parameter");
  },
);

catalogue(
  "overlapping fragments with different bytes get illegal_parameter",
  async ({ log, peer }) => {
    await holdFlight5(peer);
    await peer.sendRaw(
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 40, 0, new Uint8Array(20).fill(1)),
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 40, 10, new Uint8Array(20).fill(2)),
    );
    await expectAlert(log, peer, "illegal_parameter");
  },
);

catalogue(
  "fragment_offset + fragment_length past message_length gets decode_error",
  async ({ log, peer }) => {
    await holdFlight5(peer);
    await peer.sendRaw(
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 10, 5, new Uint8Array(10)),
    );
    await expectAlert(log, peer, "decode_error");
  },
);

catalogue(
  "a 16 MB message_length is refused before allocating (handshake_failure)",
  async ({ log, peer }) => {
    await holdFlight5(peer);
    await peer.sendRaw(
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 0xffffff, 0, new Uint8Array(100)),
    );
    await expectAlert(log, peer, "handshake_failure");
  },
);

catalogue(
  "a duplicate message_seq with a different type gets illegal_parameter",
  async ({ log, peer }) => {
    await holdFlight5(peer);
    await peer.sendRaw(
      peer.rawFragment(HandshakeType.ClientKeyExchange, 2, 40, 0, new Uint8Array(10)),
      peer.rawFragment(HandshakeType.Finished, 2, 40, 10, new Uint8Array(10)),
    );
    await expectAlert(log, peer, "illegal_parameter");
  },
);

catalogue(
  "wrong message_seq values are ignored and the real flight completes",
  async ({ log, peer }) => {
    const flight5 = await holdFlight5(peer);
    const cke = encodePskClientKeyExchange(IDENTITY);
    await peer.sendRaw(
      peer.rawMessage(HandshakeType.ClientKeyExchange, 7, cke), // ahead, inside the window
      peer.rawMessage(HandshakeType.ClientKeyExchange, 300, cke), // far ahead
      peer.rawMessage(HandshakeType.ClientKeyExchange, 0, cke), // already processed
    );
    await peer.sendRaw(...flight5);
    await peer.until(() => peer.connection!.isEstablished, "handshake");
    await expectSilence(log, peer);
  },
);

// ---- handshake state machine ---------------------------------------------------------

catalogue(
  "ChangeCipherSpec before the key exchange is dropped; the handshake completes",
  async ({ log, peer }) => {
    const flight5 = await holdFlight5(peer);
    await peer.sendRaw(peer.rawRecord(ContentType.ChangeCipherSpec, Uint8Array.of(1)));
    await peer.sendRaw(...flight5);
    await peer.until(() => peer.connection!.isEstablished, "handshake");
    await expectSilence(log, peer);
  },
);

catalogue(
  "Finished before ChangeCipherSpec (in epoch 0) gets unexpected_message",
  async ({ log, peer }) => {
    const [cke] = await holdFlight5(peer);
    await peer.sendRaw(cke!, peer.rawMessage(HandshakeType.Finished, 3, new Uint8Array(12)));
    await expectAlert(log, peer, "unexpected_message");
  },
);

catalogue(
  "an epoch-1 Finished ahead of its ChangeCipherSpec is held; the handshake completes",
  async ({ log, peer }) => {
    const [cke, ccs, finished] = await holdFlight5(peer);
    await peer.sendRaw(cke!);
    await peer.sendRaw(finished!);
    await peer.sendRaw(ccs!);
    await peer.until(() => peer.connection!.isEstablished, "handshake");
    await expectSilence(log, peer);
  },
);

catalogue("a Finished with wrong verify_data gets decrypt_error", async ({ log, peer }) => {
  const [cke, ccs] = await holdFlight5(peer);
  await peer.sendRaw(cke!, ccs!);
  // Sealed with the right keys, so only the verify_data is wrong.
  peer.connection!.injectRecord(
    ContentType.Handshake,
    encodeHandshakeMessage(HandshakeType.Finished, 3, new Uint8Array(12).fill(0x55)),
  );
  peer.flush();
  await expectAlert(log, peer, "decrypt_error");
});

catalogue("a Finished whose ciphertext was modified gets bad_record_mac", async ({ log, peer }) => {
  const [cke, ccs, finished] = await holdFlight5(peer);
  finished![finished!.length - 1]! ^= 0x01;
  await peer.sendRaw(cke!, ccs!, finished!);
  await expectAlert(log, peer, "bad_record_mac");
});

catalogue(
  "application data in epoch 0 is dropped, during and after the handshake",
  async ({ log, peer }) => {
    const flight5 = await holdFlight5(peer);
    await peer.sendRaw(peer.rawRecord(ContentType.ApplicationData, text.encode("early plain")));
    await peer.sendRaw(...flight5);
    await peer.until(() => peer.connection!.isEstablished, "handshake");
    await peer.sendRaw(peer.rawRecord(ContentType.ApplicationData, text.encode("late plain")));
    await expectSilence(log, peer);
    assert.deepEqual(dataFrom(log, peer), ["probe"]);
  },
);

catalogue(
  "application data before the handshake completed is not delivered",
  async ({ log, peer }) => {
    const [cke, ccs, finished] = await holdFlight5(peer);
    await peer.sendRaw(cke!, ccs!);
    // Epoch 1, sealed with the right keys, but ahead of the Finished.
    peer.connection!.injectRecord(ContentType.ApplicationData, text.encode("too early"));
    peer.flush();
    await peer.sendRaw(finished!);
    await peer.until(() => peer.connection!.isEstablished, "handshake");
    await expectSilence(log, peer);
    assert.deepEqual(dataFrom(log, peer), ["probe"]);
  },
);

catalogue(
  "a ClientHello inside epoch 1 before Finished gets unexpected_message",
  async ({ log, peer }) => {
    const [cke, ccs] = await holdFlight5(peer);
    await peer.sendRaw(cke!, ccs!);
    const hello = encodeClientHello({
      clientVersion: DTLS_1_2,
      random: new Uint8Array(32).fill(7),
      sessionId: new Uint8Array(0),
      cookie: new Uint8Array(0),
      cipherSuites: [0x00a8],
      compressionMethods: new Uint8Array([0]),
      extensions: [],
    });
    peer.connection!.injectRecord(
      ContentType.Handshake,
      encodeHandshakeMessage(HandshakeType.ClientHello, 3, hello),
    );
    peer.flush();
    await expectAlert(log, peer, "unexpected_message");
  },
);

catalogue(
  "renegotiation after the handshake gets a no_renegotiation warning",
  async ({ log, peer }) => {
    await establish(peer);
    const hello = encodeClientHello({
      clientVersion: DTLS_1_2,
      random: new Uint8Array(32).fill(8),
      sessionId: new Uint8Array(0),
      cookie: new Uint8Array(0),
      cipherSuites: [0x00a8],
      compressionMethods: new Uint8Array([0]),
      extensions: [],
    });
    peer.connection!.injectRecord(
      ContentType.Handshake,
      encodeHandshakeMessage(HandshakeType.ClientHello, 4, hello),
    );
    peer.flush();
    await probe(peer);
    assert.deepEqual(alertsSentTo(log, peer), ["no_renegotiation"]);
    assert.equal(peer.connection!.isEstablished, true);
  },
);

catalogue(
  "an epoch-0 ClientHello with a new random from a peer whose association is active changes nothing",
  async ({ log, peer, server }) => {
    await establish(peer);
    const hello = encodeClientHello({
      clientVersion: DTLS_1_2,
      random: new Uint8Array(32).fill(9),
      sessionId: new Uint8Array(0),
      cookie: new Uint8Array(0),
      cipherSuites: [0x00a8],
      compressionMethods: new Uint8Array([0]),
      extensions: [],
    });
    const cookies = () =>
      log.entries.filter((e) => e.event === "cookie_sent" && e.peer === peer.key).length;
    await peer.sendRaw(peer.rawMessage(HandshakeType.ClientHello, 0, hello));
    // Dropped while the association has made progress in the last 2 s (a
    // restarted client retries and is served once it is quiet: see
    // tests/connection/restart_test.ts): a spoofer cannot make us throw a
    // HelloVerifyRequest at a client that may still be in its handshake.
    await expectSilence(log, peer);
    assert.equal(cookies(), 1);
    assert.equal(server.connectionCount, 2);
  },
);

catalogue(
  "close_notify in the middle of the handshake is answered and frees the state",
  async ({ log, peer, server }) => {
    await holdFlight5(peer);
    assert.equal(server.halfOpenCount, 1);
    await peer.sendRaw(
      peer.rawRecord(
        ContentType.Alert,
        encodeAlert(AlertLevel.Warning, AlertDescription.CloseNotify),
      ),
    );
    await peer.until(() => alertsSentTo(log, peer).length > 0, "close_notify back");
    assert.deepEqual(alertsSentTo(log, peer), ["close_notify"]);
    await peer.until(() => server.halfOpenCount === 0, "state freed");
    // The same address and port may start again.
    peer.held.length = 0;
    await establish(peer);
    await probe(peer);
  },
);

// ---- replay ------------------------------------------------------------------------

catalogue("a replayed datagram is delivered once", async ({ log, peer }) => {
  await establish(peer);
  const record = sealed(peer, "once");
  await peer.sendRaw(record, record, record);
  await expectSilence(log, peer);
  assert.deepEqual(dataFrom(log, peer), ["once", "probe"]);
});

catalogue(
  "a replayed flight 5 after the handshake is dropped: no second handshake",
  async ({ log, peer, server }) => {
    const flight5 = await holdFlight5(peer);
    await peer.sendRaw(...flight5);
    await peer.until(() => peer.connection!.isEstablished, "handshake");
    await peer.sendRaw(...flight5);
    await expectSilence(log, peer);
    assert.equal(server.connectionCount, 2);
    const completed = log.entries.filter((e) =>
      e.event === "handshake_complete" && e.peer === peer.key
    );
    assert.equal(completed.length, 1);
  },
);

catalogue("an old sequence number outside the replay window is dropped", async ({ log, peer }) => {
  await establish(peer);
  const first = sealed(peer, "message 0");
  for (let i = 1; i <= 70; i++) await peer.sendRaw(sealed(peer, `message ${i}`));
  await peer.until(
    () => peer.events.filter((e) => e.type === "data").length === 70,
    "70 replies",
  );
  await peer.sendRaw(first);
  await expectSilence(log, peer);
  const got = dataFrom(log, peer);
  assert.equal(got.length, 71);
  assert.ok(!got.includes("message 0"), "the record 70 behind the newest was refused");
});

// ---- PSK identities -------------------------------------------------------------------

catalogue(
  "an unknown PSK identity gets bad_record_mac, as a wrong key does",
  async ({ log, peer }) => {
    peer.connect({ identity: text.encode("mallory") });
    await expectAlert(log, peer, "bad_record_mac");
  },
);

catalogue("a wrong key gets bad_record_mac", async ({ log, peer }) => {
  peer.connect({ psk: new Uint8Array(16).fill(0x42) });
  await expectAlert(log, peer, "bad_record_mac");
});

catalogue("an empty identity gets bad_record_mac, as a wrong key does", async ({ log, peer }) => {
  peer.connect({ identity: new Uint8Array(0) });
  await expectAlert(log, peer, "bad_record_mac");
});

catalogue(
  "an identity over 128 bytes (RFC 4279 §5.3) gets illegal_parameter",
  async ({ log, peer }) => {
    peer.connect({ identity: new Uint8Array(129).fill(0x61) });
    await expectAlert(log, peer, "illegal_parameter");
  },
);

catalogue(
  "an identity of 2^16-1 bytes is refused before reassembly (handshake_failure)",
  async ({ log, peer }) => {
    peer.connect({ identity: new Uint8Array(0xffff).fill(0x61) });
    await expectAlert(log, peer, "handshake_failure");
  },
);
