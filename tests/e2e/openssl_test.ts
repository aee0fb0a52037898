/**
 * End to end against OpenSSL 3.0's `s_client`: every suite it offers of ours,
 * the failure paths (wrong key, unknown identity), a key file, and shutdown
 * on SIGTERM. `tshark` then judges our bytes independently: given only the
 * PSK it must decrypt both directions and find nothing malformed.
 *
 * s_client runs without `-quiet`: that flag implies `-ign_eof`, and then
 * closing stdin no longer makes it send close_notify and exit. The full
 * output also gives the client's own view of the negotiated suite.
 */

import assert from "node:assert/strict";
import { safeText } from "../../src/server/log_text.ts";
import {
  captureSkip,
  CLOSE_NOTIFY_FROM,
  hex,
  parseDecoded,
  startTshark,
} from "../helpers/tshark.ts";
import {
  DEMO,
  type LogEntry,
  runPeer,
  type RunPeerResult,
  type ServerProcess,
  skipUnless,
  spawnPeer,
  startServer,
} from "../helpers/server_process.ts";

/** The Qt example's reply, with the client's address: `to (127.0.0.1:54321): ACK`. */
const ACK = /to \(127\.0\.0\.1:(\d+)\): ACK/;
/** s_client sends each stdin line as one datagram, newline included. */
const MESSAGE = "Message #1\n";
const TIMEOUT_MS = 10_000;

interface Psk {
  readonly identity: string;
  readonly keyHex: string;
}

function sClientArgs(port: number, cipher: string, extra: readonly string[] = [], psk: Psk = DEMO) {
  return [
    "s_client",
    "-dtls1_2",
    "-connect",
    `127.0.0.1:${port}`,
    "-psk",
    psk.keyHex,
    "-psk_identity",
    psk.identity,
    "-cipher",
    cipher,
    ...extra,
  ];
}

/** Runs s_client once: one message, stdin held open until the ACK (or its exit). */
function sClient(
  port: number,
  cipher: string,
  extra: readonly string[] = [],
  psk: Psk = DEMO,
): Promise<RunPeerResult> {
  return runPeer("openssl", sClientArgs(port, cipher, extra, psk), {
    input: MESSAGE,
    until: ACK,
    timeoutMs: TIMEOUT_MS,
  });
}

function show(server: ServerProcess, result: RunPeerResult): string {
  return `exit ${result.code} (signal ${result.signal}, timed out ${result.timedOut})\n` +
    `--- s_client stdout:\n${result.stdout}\n--- s_client stderr:\n${result.stderr}\n` +
    server.describe();
}

/** What a good session must show, on both sides. Returns the handshake_complete entry. */
async function assertSession(
  server: ServerProcess,
  result: RunPeerResult,
  expected: { cipher: string; suite: string; logsPlaintext?: boolean },
): Promise<LogEntry> {
  const context = show(server, result);
  assert.equal(result.timedOut, false, `s_client had to be killed\n${context}`);
  assert.equal(result.code, 0, `s_client failed\n${context}`);
  assert.ok(result.reply, `no ACK from the server\n${context}`);

  // The client's view of the session.
  assert.match(result.stdout, /Protocol\s*: DTLSv1\.2/, context);
  const openSslName = expected.cipher.replace(/@SECLEVEL=\d+$/, "");
  assert.match(result.stdout, new RegExp(`Cipher\\s*: ${openSslName}\\n`), context);

  // The server's view.
  const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
  assert.equal(complete.suite, expected.suite, context);
  assert.equal(complete.version, "DTLS 1.2", context);
  const peer = complete.peer;
  assert.equal(typeof peer, "string");
  // The reply names exactly the client's address as the server saw it.
  assert.equal(result.reply[0], `to (${peer}): ACK`, context);

  const datagram = await server.waitForEvent("datagram", { peer }, TIMEOUT_MS);
  if (expected.logsPlaintext ?? true) {
    // The log shows the newline escaped (safeText): one line per datagram.
    assert.equal(datagram.plaintext, safeText(MESSAGE), context);
  } else {
    // With a key file the server must not log payloads.
    assert.equal("plaintext" in datagram, false, context);
  }
  assert.equal(datagram.bytes, MESSAGE.length, context);
  // The protected record as received: application_data (0x17), DTLS 1.2 (fefd), epoch 1.
  assert.equal(typeof datagram.ciphertext, "string", context);
  assert.match(datagram.ciphertext as string, /^17fefd0001[0-9a-f]{16,}$/, context);

  // Closing stdin made s_client send close_notify.
  const closed = await server.waitForEvent("connection_closed", { peer }, TIMEOUT_MS);
  assert.match(String(closed.reason), /^close_notify/, context);
  assert.equal(closed.error, false, context);
  assert.equal(
    server.events("alert_sent").filter((e) => e.level_alert === "fatal").length,
    0,
    context,
  );
  assert.deepEqual(server.strayLines, [], context);
  return complete;
}

/** s_client's name → our IANA name. */
const SUITES: readonly (readonly [string, string])[] = [
  ["PSK-AES128-GCM-SHA256", "TLS_PSK_WITH_AES_128_GCM_SHA256"],
  ["PSK-AES256-GCM-SHA384", "TLS_PSK_WITH_AES_256_GCM_SHA384"],
  ["PSK-CHACHA20-POLY1305", "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256"],
  ["ECDHE-PSK-CHACHA20-POLY1305", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"],
  ["PSK-AES128-CCM", "TLS_PSK_WITH_AES_128_CCM"],
  ["PSK-AES256-CCM", "TLS_PSK_WITH_AES_256_CCM"],
  // 64-bit tags are below OpenSSL's default security level.
  ["PSK-AES128-CCM8@SECLEVEL=0", "TLS_PSK_WITH_AES_128_CCM_8"],
  ["PSK-AES256-CCM8@SECLEVEL=0", "TLS_PSK_WITH_AES_256_CCM_8"],
  ["PSK-AES128-CBC-SHA256", "TLS_PSK_WITH_AES_128_CBC_SHA256"],
  ["ECDHE-PSK-AES128-CBC-SHA256", "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256"],
];

for (const [cipher, suite] of SUITES) {
  Deno.test({
    name: `openssl s_client: ${cipher} → ${suite}`,
    ...skipUnless("openssl"),
    async fn() {
      await using server = await startServer();
      const result = await sClient(server.port, cipher);
      const complete = await assertSession(server, result, { cipher, suite });
      assert.equal(complete.identity, DEMO.identity);
      assert.equal(
        complete.extendedMasterSecret,
        true,
        "OpenSSL always offers extended_master_secret",
      );
      if (suite.includes("ECDHE")) assert.equal(complete.group, "x25519", "OpenSSL's first group");
      // RFC 7366: encrypt_then_mac applies to CBC only; OpenSSL offers it by default.
      assert.equal(complete.encryptThenMac, suite.includes("CBC"));
      assert.equal(await server.stop(), 0);
    },
  });
}

// CBC without encrypt-then-mac: MAC-then-encrypt records (RFC 5246 §6.2.3.2).
for (const [cipher, suite] of SUITES.filter(([, s]) => s.includes("CBC"))) {
  Deno.test({
    name: `openssl s_client: ${cipher} -no_etm (MAC-then-encrypt)`,
    ...skipUnless("openssl"),
    async fn() {
      await using server = await startServer();
      const result = await sClient(server.port, cipher, ["-no_etm"]);
      const complete = await assertSession(server, result, { cipher, suite });
      assert.equal(complete.encryptThenMac, false);
      assert.equal(await server.stop(), 0);
    },
  });
}

Deno.test({
  name: "openssl s_client: ECDHE-PSK with secp256r1",
  ...skipUnless("openssl"),
  async fn() {
    await using server = await startServer();
    const cipher = "ECDHE-PSK-CHACHA20-POLY1305";
    const result = await sClient(server.port, cipher, ["-groups", "P-256"]);
    const complete = await assertSession(server, result, {
      cipher,
      suite: "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    });
    assert.equal(complete.group, "secp256r1");
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "openssl s_client: over IPv6 (the server bound to ::1)",
  ...skipUnless("openssl"),
  async fn() {
    await using server = await startServer(["--address", "::1"]);
    const args = sClientArgs(server.port, "PSK-AES128-GCM-SHA256");
    args[args.indexOf(`127.0.0.1:${server.port}`)] = `[::1]:${server.port}`;
    const result = await runPeer("openssl", args, {
      input: MESSAGE,
      until: /to \(::1:(\d+)\): ACK/,
      timeoutMs: TIMEOUT_MS,
    });
    const context = show(server, result);
    assert.equal(result.code, 0, context);
    assert.ok(result.reply, `no ACK over IPv6\n${context}`);
    const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
    // The peer key of an IPv6 client is bracketed; the reply is Qt's peer_info() format.
    assert.equal(complete.peer, `[::1]:${result.reply[1]}`, context);
    assert.equal(result.reply[0], `to (::1:${result.reply[1]}): ACK`, context);
    const closed = await server.waitForEvent(
      "connection_closed",
      { peer: complete.peer },
      TIMEOUT_MS,
    );
    assert.match(String(closed.reason), /^close_notify/, context);
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "openssl s_client: a wrong key fails the handshake with an alert",
  ...skipUnless("openssl"),
  async fn() {
    await using server = await startServer();
    const result = await sClient(server.port, "PSK-AES128-GCM-SHA256", [], {
      identity: DEMO.identity,
      keyHex: "0102030405060708",
    });
    const context = show(server, result);
    assert.equal(result.timedOut, false, context);
    assert.notEqual(result.code, 0, context);
    assert.equal(result.reply, undefined, context);
    // The keys differ, so the client's Finished cannot be authenticated (RFC 5246 §7.2.2).
    assert.match(result.stderr, /alert (bad record mac|decrypt error)/, context);

    const closed = await server.waitForEvent("connection_closed", { error: true }, TIMEOUT_MS);
    const alert = server.events("alert_sent").find((e) => e.peer === closed.peer);
    assert.ok(alert, `no alert_sent\n${context}`);
    assert.equal(alert.level_alert, "fatal");
    assert.match(String(alert.description), /^(bad_record_mac|decrypt_error)$/);
    assert.equal(server.events("handshake_complete").length, 0, context);
    assert.equal(server.events("datagram").length, 0, context);
    assert.equal(await server.stop(), 0);
  },
});

/** Writes a psktool-format key file under /tmp (the tests may write only there). */
async function withKeyFile<T>(text: string, use: (path: string) => Promise<T>): Promise<T> {
  const path = await Deno.makeTempFile({ dir: "/tmp", prefix: "dtls-e2e-", suffix: ".psk" });
  try {
    await Deno.writeTextFile(path, text);
    return await use(path);
  } finally {
    await Deno.remove(path);
  }
}

const KEY_FILE = [
  "# psktool format: identity:hexkey",
  "alice:00112233445566778899aabbccddeeff",
  "",
  "device:with:colons:0f0e0d0c0b0a09080706050403020100",
].join("\n") + "\n";

Deno.test({
  name: "openssl s_client: with a key file, an unknown identity fails as a wrong key does",
  ...skipUnless("openssl"),
  async fn() {
    await withKeyFile(KEY_FILE, async (path) => {
      await using server = await startServer(["--psk-file", path]);
      // The demo identity is not in the file: the demo key must not apply.
      const result = await sClient(server.port, "PSK-AES128-GCM-SHA256");
      const context = show(server, result);
      assert.equal(result.timedOut, false, context);
      assert.notEqual(result.code, 0, context);
      // Not unknown_psk_identity: that would tell which identities exist.
      assert.match(result.stderr, /alert bad record mac/, context);

      const identity = await server.waitForEvent(
        "psk_identity",
        { identity: DEMO.identity },
        TIMEOUT_MS,
      );
      assert.equal(identity.known, false, context);
      const alert = await server.waitForEvent(
        "alert_sent",
        { description: "bad_record_mac" },
        TIMEOUT_MS,
      );
      assert.equal(alert.level_alert, "fatal", context);
      const closed = await server.waitForEvent(
        "connection_closed",
        { peer: identity.peer },
        TIMEOUT_MS,
      );
      assert.equal(closed.error, true, context);
      assert.equal(server.events("handshake_complete").length, 0, context);
      assert.equal(await server.stop(), 0);
    });
  },
});

Deno.test({
  name: "openssl s_client: with a key file, a listed identity works",
  ...skipUnless("openssl"),
  async fn() {
    await withKeyFile(KEY_FILE, async (path) => {
      await using server = await startServer(["--psk-file", path]);
      for (
        const psk of [
          { identity: "alice", keyHex: "00112233445566778899aabbccddeeff" },
          // The identity is everything before the last colon.
          { identity: "device:with:colons", keyHex: "0f0e0d0c0b0a09080706050403020100" },
        ]
      ) {
        const cipher = "PSK-AES256-GCM-SHA384";
        const result = await sClient(server.port, cipher, [], psk);
        assert.equal(result.code, 0, show(server, result));
        assert.ok(result.reply, show(server, result));
        // Each client has its own port: look at this one's session only.
        const peer = `127.0.0.1:${result.reply[1]}`;
        await server.waitForEvent("connection_closed", { peer, error: false }, TIMEOUT_MS);
        const complete = server.events("handshake_complete").find((e) => e.peer === peer);
        assert.ok(complete, show(server, result));
        assert.equal(complete.identity, psk.identity);
        assert.equal(complete.suite, "TLS_PSK_WITH_AES_256_GCM_SHA384");
        const datagram = server.events("datagram").find((e) => e.peer === peer);
        assert.ok(datagram, show(server, result));
        assert.equal(datagram.bytes, MESSAGE.length);
        assert.equal("plaintext" in datagram, false, "payloads are not logged with real keys");
      }
      assert.equal(server.events("psk_identity").every((e) => e.known === true), true);
      assert.equal(await server.stop(), 0);
    });
  },
});

Deno.test({
  name: "openssl s_client: SIGTERM sends close_notify to a connected client and exits 0",
  ...skipUnless("openssl"),
  async fn() {
    await using server = await startServer();
    await using client = spawnPeer("openssl", sClientArgs(server.port, "PSK-AES128-GCM-SHA256"));
    await client.write(MESSAGE);
    const reply = await client.waitForOutput(ACK, TIMEOUT_MS);
    const peer = `127.0.0.1:${reply[1]}`;
    await server.waitForEvent("datagram", { peer }, TIMEOUT_MS);

    assert.equal(await server.stop("SIGTERM"), 0, server.describe());
    // stdin is still open: only the server's close_notify can make s_client quit.
    const result = await client.wait(TIMEOUT_MS);
    const context = `${client.describe()}\n${server.describe()}`;
    assert.equal(result.timedOut, false, `s_client did not see the close_notify\n${context}`);
    assert.equal(result.code, 0, context);
    // s_client prints "closed" when SSL_read reports the peer's close_notify.
    assert.match(result.stdout, /ACK\s*closed\s*$/, context);

    const alert = server.events("alert_sent").find((e) => e.peer === peer);
    assert.equal(alert?.description, "close_notify", context);
    assert.equal(alert?.level_alert, "warning", context);
    const closed = server.events("connection_closed").find((e) => e.peer === peer);
    assert.equal(closed?.error, false, context);
    const shutdown = server.events("shutdown");
    assert.equal(shutdown.length, 1, context);
    assert.equal(shutdown[0]?.peers, 1, context);
    assert.equal(server.logs.at(-1)?.event, "closed", context);
  },
});

// ---- tshark: an independent judge -------------------------------------------

const CAPTURE = captureSkip();

for (
  const [cipher, extra] of [
    ["PSK-AES128-GCM-SHA256", []],
    ["PSK-AES256-CCM8@SECLEVEL=0", []],
    // No ChaCha20-Poly1305: tshark 4.0 decrypts it in TLS but not in DTLS,
    // not even between openssl s_server and s_client.
    ["PSK-AES128-CBC-SHA256", []],
    ["PSK-AES128-CBC-SHA256", ["-no_etm"]],
  ] as const
) {
  Deno.test({
    name: `tshark decrypts a session with the PSK: ${cipher} ${extra.join(" ")}`.trimEnd(),
    ...CAPTURE,
    async fn() {
      await using server = await startServer();
      await using tshark = await startTshark(server.port);
      const result = await sClient(server.port, cipher, extra);
      assert.equal(result.code, 0, show(server, result));
      const clientPort = Number(result.reply?.[1]);
      // The server answers the client's close_notify with its own, encrypted (epoch 1).
      await tshark.waitForOutput(CLOSE_NOTIFY_FROM(server.port), TIMEOUT_MS);
      await tshark.stop("SIGINT");
      const decoded = parseDecoded(tshark.stdout);
      const context = `${tshark.describe()}\n${server.describe()}`;

      const fromClient = decoded.filter((d) => d.srcPort === clientPort).map((d) => d.data).join(
        "",
      );
      const fromServer = decoded.filter((d) => d.srcPort === server.port).map((d) => d.data).join(
        "",
      );
      assert.equal(fromClient, hex(MESSAGE), context);
      assert.equal(fromServer, hex(`to (127.0.0.1:${clientPort}): ACK`), context);
      assert.deepEqual(decoded.filter((d) => d.malformed !== ""), [], context);
      // Expert info of error severity (PI_ERROR = 0x00800000) means tshark disagrees with our bytes.
      assert.deepEqual(
        decoded.filter((d) => d.severity.split(",").includes("8388608")),
        [],
        context,
      );
      assert.equal(await server.stop(), 0);
    },
  });
}

Deno.test({
  name: "tshark: on SIGTERM the server's close_notify is an encrypted alert record",
  ...CAPTURE,
  async fn() {
    await using server = await startServer();
    await using tshark = await startTshark(server.port);
    await using client = spawnPeer("openssl", sClientArgs(server.port, "PSK-AES128-GCM-SHA256"));
    await client.write(MESSAGE);
    const reply = await client.waitForOutput(ACK, TIMEOUT_MS);
    assert.equal(await server.stop("SIGTERM"), 0, server.describe());
    const result = await client.wait(TIMEOUT_MS);
    assert.equal(result.timedOut, false, client.describe());

    // Alert (21) in epoch 1, description close_notify (0), from the server's port.
    await tshark.waitForOutput(CLOSE_NOTIFY_FROM(server.port), TIMEOUT_MS);
    await tshark.stop("SIGINT");
    const decoded = parseDecoded(tshark.stdout);
    const alerts = decoded.filter((d) => d.srcPort === server.port && d.contentTypes === "21");
    assert.deepEqual(alerts.map((d) => [d.epochs, d.alert]), [["1", "0"]], tshark.describe());
    assert.ok(decoded.some((d) => d.srcPort === Number(reply[1])), tshark.describe());
  },
});
