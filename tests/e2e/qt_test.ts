/**
 * End to end against Qt's QDtls (Qt 5.15 on OpenSSL), the stack of the Qt
 * "DTLS client" example this server answers: a client of ours on QDtls
 * (tests/e2e/qt/dtls_client.cpp), compiled against Debian's qtbase5-dev,
 * first with Qt's default DTLS configuration and an identity like the
 * example's ("Alice (clone number 1)"), then with each PSK cipher Qt
 * knows; then on certificates, QDtls verifying our chain (VerifyPeer, the
 * test CA as the only one trusted, name localhost): it completes with our
 * EC and RSA certificates and refuses one from a CA it does not trust.
 * Without a C++ compiler or Qt, these tests skip, saying why.
 */

import { certificateArgs } from "../helpers/certificates.ts";
import assert from "node:assert/strict";
import {
  assertReceivedThenClosed,
  DEMO,
  runPeer,
  type ServerProcess,
  startServer,
} from "../helpers/server_process.ts";
import { buildPeer, shellSucceeds } from "../helpers/build_peer.ts";
import { testPki } from "../helpers/pki.ts";

const TIMEOUT_MS = 20_000;

/** The compiler flags of Qt 5 Network, or undefined. */
function qtFlags(): string[] | undefined {
  const out = new Deno.Command("sh", {
    args: ["-c", "pkg-config --cflags --libs Qt5Network"],
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  return out.success ? new TextDecoder().decode(out.stdout).trim().split(/\s+/) : undefined;
}

const flags = qtFlags();
const qt = buildPeer(
  "qt-dtls-client",
  () => {
    if (!shellSucceeds("command -v g++")) return "no C++ compiler (Debian: g++)";
    if (flags === undefined) return "Qt 5 Network not installed (Debian: qtbase5-dev, pkg-config)";
    return undefined;
  },
  "g++",
  (output) => [
    "-std=c++17",
    "-fPIC",
    "-O1",
    "-o",
    output,
    new URL("./qt/dtls_client.cpp", import.meta.url).pathname,
    ...(flags ?? []),
  ],
);

/** One session: handshake, a message, the reply, close_notify. Returns the handshake_complete entry. */
async function session(
  server: ServerProcess,
  identity: string,
  message: string,
  cipher?: string,
) {
  const args = ["127.0.0.1", String(server.port), identity, DEMO.keyHex, message];
  const result = await runPeer(qt.path(), cipher === undefined ? args : [...args, cipher], {
    timeoutMs: TIMEOUT_MS,
  });
  const context = `exit ${result.code}\n--- client stdout:\n${result.stdout}\n` +
    `--- client stderr:\n${result.stderr}\n${server.describe()}`;
  assert.equal(result.code, 0, context);
  const out = JSON.parse(result.stdout.trim()) as { cipher: string; reply: string };
  const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
  assert.equal(complete.identity, identity, context);
  assert.equal(out.reply, `to (${complete.peer}): ACK`, context);
  // QDtls::shutdown sends close_notify.
  await assertReceivedThenClosed(server, complete.peer, message, context, TIMEOUT_MS);
  return { complete, cipher: out.cipher };
}

Deno.test({
  name: "qt QDtls: the example's default configuration and identity, against the demo server",
  ignore: qt.ignore,
  async fn() {
    await using server = await startServer();
    const { complete, cipher } = await session(server, "Alice (clone number 1)", "Message #1");
    // Qt offers ECDHE-PSK first among what we share: forward secrecy.
    assert.equal(cipher, "ECDHE-PSK-CHACHA20-POLY1305");
    assert.equal(complete.suite, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256");
    assert.equal(complete.extendedMasterSecret, true);
    const identity = server.events("psk_identity").find((e) =>
      e.identity === "Alice (clone number 1)"
    );
    assert.ok(identity, "the identity is logged");
    assert.equal(await server.stop(), 0);
  },
});

/** Qt's name → our IANA name (Qt 5.15 has no CCM suites). */
const CIPHERS: readonly (readonly [string, string])[] = [
  ["PSK-AES128-GCM-SHA256", "TLS_PSK_WITH_AES_128_GCM_SHA256"],
  ["PSK-AES256-GCM-SHA384", "TLS_PSK_WITH_AES_256_GCM_SHA384"],
  ["PSK-CHACHA20-POLY1305", "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256"],
  ["ECDHE-PSK-CHACHA20-POLY1305", "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"],
  ["PSK-AES128-CBC-SHA256", "TLS_PSK_WITH_AES_128_CBC_SHA256"],
  ["ECDHE-PSK-AES128-CBC-SHA256", "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256"],
];

for (const [qtName, suite] of CIPHERS) {
  Deno.test({
    name: `qt QDtls: ${qtName} → ${suite}`,
    ignore: qt.ignore,
    async fn() {
      await using server = await startServer();
      const { complete, cipher } = await session(server, DEMO.identity, "Message #2", qtName);
      assert.equal(cipher, qtName);
      assert.equal(complete.suite, suite);
      assert.equal(await server.stop(), 0);
    },
  });
}

/** The Qt client on certificates: trusts only `ca`, verifies the name localhost. */
function certificateClient(server: ServerProcess, ca: string, cipher?: string) {
  const args = ["--ca", ca, "127.0.0.1", String(server.port), "Message #3"];
  return runPeer(qt.path(), cipher === undefined ? args : [...args, cipher], {
    timeoutMs: TIMEOUT_MS,
  });
}

/**
 * QDtls verified our chain, got the ACK and closed; returns the cipher it
 * reports and the server's handshake_complete entry.
 */
async function certificateSession(server: ServerProcess, cipher?: string) {
  const result = await certificateClient(server, testPki().caCert, cipher);
  const context = `exit ${result.code}\n--- client stdout:\n${result.stdout}\n` +
    `--- client stderr:\n${result.stderr}\n${server.describe()}`;
  assert.equal(result.code, 0, context);
  const out = JSON.parse(result.stdout.trim()) as { cipher: string; reply: string; peer: string };
  assert.equal(out.peer, "localhost", context);
  const complete = await server.waitFor(
    (e) => e.event === "handshake_complete" && out.reply === `to (${e.peer}): ACK`,
    TIMEOUT_MS,
  );
  assert.equal(complete.extendedMasterSecret, true, context);
  await assertReceivedThenClosed(server, complete.peer, "Message #3", context, TIMEOUT_MS);
  return { complete, cipher: out.cipher };
}

Deno.test({
  name: "qt QDtls on certificates: VerifyPeer accepts our EC chain, with Qt's default ciphers",
  ignore: qt.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--log-plaintext",
    ]);
    await t.step("default configuration", async () => {
      const { complete, cipher } = await certificateSession(server);
      assert.match(cipher, /^ECDHE-ECDSA-/);
      assert.match(String(complete.suite), /^TLS_ECDHE_ECDSA_WITH_/);
    });
    // Qt 5.15 has no CCM suites.
    for (
      const [qtName, suite] of [
        ["ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
        ["ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
      ] as const
    ) {
      await t.step(qtName, async () => {
        const { complete, cipher } = await certificateSession(server, qtName);
        assert.equal(cipher, qtName);
        assert.equal(complete.suite, suite);
      });
    }
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "qt QDtls on certificates: VerifyPeer accepts our RSA chain",
  ignore: qt.ignore,
  async fn() {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.rsaCert, pki.rsaKey),
      "--log-plaintext",
    ]);
    const { complete, cipher } = await certificateSession(server);
    assert.match(cipher, /^ECDHE-RSA-/);
    assert.match(String(complete.suite), /^TLS_ECDHE_RSA_WITH_/);
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name:
    "qt QDtls on certificates: VerifyPeer refuses a certificate from a CA it does not trust, and a wrong name",
  ignore: qt.ignore,
  async fn(t) {
    // Qt on OpenSSL collects the verification errors and lets OpenSSL finish
    // the handshake; QDtls then reports PeerVerificationError and
    // abortHandshake() drops the connection without an alert. So our
    // server does log a handshake_complete: what shows the refusal is the
    // client's error and that no application data ever arrives.
    const pki = testPki();
    const cases = [
      ["untrusted CA", pki.untrustedCert, pki.untrustedKey, [], /verify: .*issuer certificate/i],
      [
        "wrong server name",
        pki.ecCert,
        pki.ecKey,
        ["--server-name", "example.org"],
        /verify: .*host name did not match/i,
      ],
    ] as const;
    for (const [name, cert, key, options, reason] of cases) {
      await t.step(name, async () => {
        await using server = await startServer([...certificateArgs(cert, key)]);
        const result = await runPeer(qt.path(), [
          "--ca",
          pki.caCert,
          ...options,
          "127.0.0.1",
          String(server.port),
          "Message #3",
        ], { timeoutMs: TIMEOUT_MS });
        const context = `exit ${result.code}\n--- client stdout:\n${result.stdout}\n` +
          `--- client stderr:\n${result.stderr}\n${server.describe()}`;
        assert.equal(result.code, 1, context);
        assert.equal(result.stdout, "", context);
        assert.match(result.stderr, /^handshake: Peer verification failed/, context);
        assert.match(result.stderr, reason, context);
        assert.equal(server.events("datagram").length, 0, context);
      });
    }
  },
});
