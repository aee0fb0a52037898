/**
 * End to end against pion/dtls v2 (Go), the DTLS stack of the WebRTC world,
 * in both directions: pion's client against our server for every suite pion
 * has of ours, and our client against pion's server. The Go peer
 * (tests/e2e/pion/main.go) is built from Debian's packages golang-go and
 * golang-github-pion-dtls.v2-dev; without them these tests skip, saying why.
 */

import { certificateArgs } from "../helpers/certificates.ts";
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { DEMO, runPeer, spawnPeer, startServer } from "../helpers/server_process.ts";
import { buildPionPeer } from "./pion/build.ts";
import { testPki } from "../helpers/pki.ts";

const TIMEOUT_MS = 15_000;
const KEY = new Uint8Array(DEMO.keyHex.match(/../g)!.map((h) => parseInt(h, 16)));

/** pion's PSK suites; all of them are ours too. */
const SUITES = [
  "TLS_PSK_WITH_AES_128_GCM_SHA256",
  "TLS_PSK_WITH_AES_128_CCM",
  "TLS_PSK_WITH_AES_128_CCM_8",
  "TLS_PSK_WITH_AES_256_CCM_8",
  "TLS_PSK_WITH_AES_128_CBC_SHA256",
  "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256",
];

const pion = buildPionPeer();

for (const suite of SUITES) {
  Deno.test({
    name: `pion client: ${suite} against our server`,
    ignore: pion.ignore,
    async fn() {
      for (let attempt = 1;; attempt++) {
        await using server = await startServer();
        const result = await runPeer(pion.path(), [
          "-mode",
          "client",
          "-port",
          String(server.port),
          "-suite",
          suite,
          "-identity",
          DEMO.identity,
          "-psk",
          DEMO.keyHex,
          "-message",
          "Message from pion",
        ], { timeoutMs: TIMEOUT_MS });
        const context =
          `exit ${result.code}\n--- pion stdout:\n${result.stdout}\n--- pion stderr:\n` +
          `${result.stderr}\n${server.describe()}`;
        assert.equal(result.code, 0, context);
        const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
        assert.equal(complete.suite, suite, context);
        assert.equal(complete.identity, DEMO.identity, context);
        assert.equal(complete.extendedMasterSecret, true, context);
        const { reply } = JSON.parse(result.stdout.trim()) as { reply: string };
        assert.equal(reply, `to (${complete.peer}): ACK`, context);
        const datagram = await server.waitForEvent("datagram", { peer: complete.peer }, TIMEOUT_MS);
        assert.equal(datagram.plaintext, "Message from pion", context);
        // pion's Close() sends close_notify, before the process exits: it is there at once or never.
        const closed = await server.waitForEvent(
          "connection_closed",
          { peer: complete.peer },
          3_000,
        ).catch(() => undefined);
        if (closed === undefined && attempt === 1) {
          // pion v2 now and then exits without sending it (seen on the wire with tshark, about
          // 1 run in 300 under CPU load: its Close() drops that write's error). A second run
          // tells a pion slip, which does not repeat, from a server that ignores close_notify.
          console.log(`pion sent no close_notify (${suite}); running it again`);
          continue;
        }
        assert.ok(closed, `no close_notify twice in a row\n${context}`);
        assert.match(String(closed.reason), /^close_notify/, context);
        const fatal = server.events("alert_sent").filter((e) => e.level_alert === "fatal");
        assert.deepEqual(fatal, [], context);
        assert.equal(await server.stop(), 0);
        return;
      }
    },
  });
}

for (const suite of SUITES) {
  Deno.test({
    name: `our client: ${suite} against pion's server`,
    ignore: pion.ignore,
    async fn() {
      await using server = spawnPeer(pion.path(), [
        "-mode",
        "server",
        "-port",
        "0",
        "-suite",
        suite,
      ]);
      const [, port] = (await server.waitForOutput(/\{"port":(\d+)\}/, TIMEOUT_MS))!;
      const client = new DtlsClient({
        hostname: "127.0.0.1",
        port: Number(port),
        identity: DEMO.identity,
        psk: KEY,
        suites: [suiteByName(suite)],
      });
      try {
        const session = await client.connect(TIMEOUT_MS);
        assert.equal(session.suite, suite);
        for (const message of ["hello pion", "x".repeat(1000)]) {
          client.send(message);
          assert.equal(new TextDecoder().decode(await client.receive(5_000)), message);
        }
      } finally {
        await client.close();
      }
    },
  });
}

/**
 * Runs pion's Go load generator in `mode` for half a second against
 * `server`; returns its JSON report, after checking it exited cleanly.
 */
async function pionLoad<T>(
  server: Awaited<ReturnType<typeof startServer>>,
  mode: "load" | "handshakes",
  clients: number,
): Promise<{ report: T & { errorsTotal: number }; context: string }> {
  const result = await runPeer(pion.path(), [
    "-mode",
    mode,
    "-port",
    String(server.port),
    "-clients",
    String(clients),
    "-size",
    "64",
    "-duration",
    "0.5",
    "-warmup",
    "0.2",
  ], { timeoutMs: TIMEOUT_MS });
  const context = `exit ${result.code}\n${result.stderr}\n${server.describe()}`;
  assert.equal(result.code, 0, context);
  const report = JSON.parse(result.stdout.trim()) as T & { errorsTotal: number };
  assert.equal(report.errorsTotal, 0, context);
  return { report, context };
}

Deno.test({
  name: "pion load mode: lock-step echo clients against our server on libc sockets",
  ignore: pion.ignore,
  async fn() {
    // The Go load generator (the benchmarks' neutral load) and the libc
    // backend in a real server process, with the CLI's --io flag.
    await using server = await startServer(["--io", "libc"]);
    const { report, context } = await pionLoad<{
      latencyMs: { p50: number; p99: number; samples: number };
    }>(server, "load", 3);
    assert.ok(report.latencyMs.samples > 0, context);
    assert.ok(report.latencyMs.p50 <= report.latencyMs.p99);
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "pion handshakes mode: full handshakes one after another, each counted by our server",
  ignore: pion.ignore,
  async fn() {
    // The Go load generator's handshake mode, which the benchmarks use, on
    // the default socket: what it counts the server must have completed.
    await using server = await startServer(["--handshake-rate", "0"]);
    const { report, context } = await pionLoad<{ handshakesPerSec: number }>(
      server,
      "handshakes",
      2,
    );
    assert.ok(report.handshakesPerSec > 0, context);
    assert.equal(await server.stop(), 0);
    const completed = server.events("handshake_complete").length;
    assert.ok(completed >= report.handshakesPerSec * 0.5, `${completed} completed\n${context}`);
  },
});

/**
 * pion's client on certificates (-ca): the ECDHE suites pion v2 (Debian's
 * 2.2.6) shares with us. pion also has TLS_ECDHE_{ECDSA,RSA}_WITH_AES_256_CBC_SHA,
 * which we do not implement, and neither ChaCha20 suite, which we do.
 */
const ECDSA_SUITES = [
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
  "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
];
const RSA_SUITES = [
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
];

/** pion's client on certificates: verifies the server against `ca` for localhost. */
function pionCertificateClient(
  port: number,
  suite: string,
  ca: string,
  extra: readonly string[] = [],
) {
  return runPeer(pion.path(), [
    "-mode",
    "client",
    "-port",
    String(port),
    "-suite",
    suite,
    "-ca",
    ca,
    "-server-name",
    "localhost",
    "-message",
    "Message from pion",
    ...extra,
  ], { timeoutMs: TIMEOUT_MS });
}

/**
 * pion verified the chain, completed `suite`, sent its message and got the
 * ACK back; returns the server's handshake_complete entry.
 */
async function assertPionCertificateSession(
  server: Awaited<ReturnType<typeof startServer>>,
  suite: string,
  { ca = testPki().caCert, extra = [] }: { ca?: string; extra?: readonly string[] } = {},
) {
  const result = await pionCertificateClient(server.port, suite, ca, extra);
  const context = `exit ${result.code}\n--- pion stdout:\n${result.stdout}\n--- pion stderr:\n` +
    `${result.stderr}\n${server.describe()}`;
  assert.equal(result.code, 0, context);
  const complete = await server.waitForEvent("handshake_complete", { suite }, TIMEOUT_MS);
  const out = JSON.parse(result.stdout.trim()) as { reply: string; serverSubject: string };
  assert.equal(out.reply, `to (${complete.peer}): ACK`, context);
  assert.equal(out.serverSubject, "CN=localhost", context);
  assert.equal(complete.extendedMasterSecret, true, context);
  const datagram = await server.waitForEvent("datagram", { peer: complete.peer }, TIMEOUT_MS);
  assert.equal(datagram.plaintext, "Message from pion", context);
  // close_notify is not judged here: pion v2 now and then drops it (see above).
  const fatal = server.events("alert_sent").filter((e) => e.level_alert === "fatal");
  assert.deepEqual(fatal, [], context);
  return complete;
}

Deno.test({
  name: "pion client on certificates: verifies our P-256 chain on every ECDHE_ECDSA suite it has",
  ignore: pion.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--log-plaintext",
    ]);
    for (const suite of ECDSA_SUITES) {
      await t.step(suite, async () => {
        await assertPionCertificateSession(server, suite);
      });
    }
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "pion client on certificates: verifies our RSA chain on both ECDHE_RSA suites it has",
  ignore: pion.ignore,
  async fn(t) {
    const pki = testPki();
    // pion v2 (2.2.6, crypto.go verifyKeySignature) verifies an RSA
    // ServerKeyExchange only if the leaf's own signature, by its issuer, is
    // sha*WithRSA: with testPki().rsaCert, an RSA key under the EC CA, it
    // fails with "unable to verify key signature, unimplemented" and sends
    // bad_certificate. A pion limitation (it looks at the issuer's algorithm
    // instead of the key), not ours: hence an RSA leaf under an RSA CA here.
    await using server = await startServer([
      ...certificateArgs(pki.rsaByRsaCert, pki.rsaByRsaKey),
      "--log-plaintext",
    ]);
    for (const suite of RSA_SUITES) {
      await t.step(suite, async () => {
        await assertPionCertificateSession(server, suite, { ca: pki.rsaCaCert });
      });
    }
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name:
    "pion client on certificates: refuses a chain from a CA it does not trust, and a wrong name",
  ignore: pion.ignore,
  async fn(t) {
    const pki = testPki();
    const suite = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    await t.step("untrusted CA", async () => {
      await using server = await startServer([
        ...certificateArgs(pki.untrustedCert, pki.untrustedKey),
      ]);
      const result = await pionCertificateClient(server.port, suite, pki.caCert);
      assert.equal(result.code, 1, result.stdout + server.describe());
      assert.match(result.stderr, /handshake: .*(unknown authority|certificate)/, result.stderr);
      assert.equal(server.events("handshake_complete").length, 0, server.describe());
    });
    await t.step("wrong server name", async () => {
      await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
      const result = await pionCertificateClient(server.port, suite, pki.caCert, [
        "-server-name",
        "example.org",
      ]);
      assert.equal(result.code, 1, result.stdout + server.describe());
      assert.match(result.stderr, /example\.org/, result.stderr);
      assert.equal(server.events("handshake_complete").length, 0, server.describe());
    });
  },
});

Deno.test({
  name:
    "pion client on certificates: client authentication with --client-ca, identified as CN=device-1",
  ignore: pion.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--client-ca",
      pki.caCert,
      "--log-plaintext",
    ]);
    await t.step("with its certificate", async () => {
      const complete = await assertPionCertificateSession(
        server,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
        { extra: ["-cert", pki.clientCert, "-key", pki.clientKey] },
      );
      assert.equal(complete.peerSubject, "CN=device-1", server.describe());
      assert.match(String(complete.peerSpkiSha256), /^[0-9a-f]{64}$/);
    });
    await t.step("without one it is refused", async () => {
      const result = await pionCertificateClient(
        server.port,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        pki.caCert,
      );
      assert.equal(result.code, 1, result.stdout + server.describe());
      await server.waitFor(
        (e) => e.event === "alert_sent" && e.description === "handshake_failure",
        5_000,
      );
    });
  },
});
