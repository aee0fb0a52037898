/**
 * Certificates end to end (issue 13, server side): OpenSSL's s_client,
 * verifying our chain against the test CA with `-verify_return_error`,
 * completes a handshake on every ECDHE_ECDSA and ECDHE_RSA suite and gets
 * the ACK back; PSK keeps working beside a certificate; a client that cannot
 * check our certificate's curve is refused; and every bad --cert / --key
 * stops the start with one clear line.
 */

import { certificateArgs } from "../helpers/certificates.ts";
import assert from "node:assert/strict";
import {
  DEMO,
  runMain,
  runPeer,
  type RunPeerResult,
  type ServerProcess,
  skipUnless,
  startServer,
} from "../helpers/server_process.ts";
import { testPki } from "../helpers/pki.ts";
import { captureSkip, hex, parseDecoded, startTshark } from "../helpers/tshark.ts";

const openssl = skipUnless("openssl");
const ACK = /to \(127\.0\.0\.1:(\d+)\): ACK/;
const TIMEOUT_MS = 10_000;

/** s_client with certificate verification against the test CA, one message. */
function sClient(port: number, extra: readonly string[]): Promise<RunPeerResult> {
  return runPeer("openssl", [
    "s_client",
    "-dtls1_2",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    testPki().caCert,
    "-verify_return_error",
    ...extra,
  ], { input: "Message #1\n", until: ACK, timeoutMs: TIMEOUT_MS });
}

function show(server: ServerProcess, result: RunPeerResult): string {
  return `exit ${result.code}, timed out ${result.timedOut}\n--- s_client stdout:\n${result.stdout}\n` +
    `--- s_client stderr:\n${result.stderr}\n${server.describe()}`;
}

/** s_client verified our chain, got the ACK, and the server logged the suite. */
async function assertCertificateSession(
  server: ServerProcess,
  result: RunPeerResult,
  suite: string,
): Promise<void> {
  const context = show(server, result);
  assert.ok(result.reply, `no ACK\n${context}`);
  assert.match(result.stdout, /Verify return code: 0 \(ok\)/, context);
  const complete = await server.waitFor(
    (e) => e.event === "handshake_complete" && e.suite === suite,
    5_000,
  );
  assert.equal(complete.version, "DTLS 1.2");
}

const EC_SUITES: [string, string][] = [
  ["ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
  ["ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
  ["ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
  ["ECDHE-ECDSA-AES128-CCM", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM"],
  ["ECDHE-ECDSA-AES128-CCM8", "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"],
];
const RSA_SUITES: [string, string][] = [
  ["ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
  ["ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"],
  ["ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"],
];

Deno.test({
  name: "openssl s_client verifies our P-256 chain on every ECDHE_ECDSA suite, with each group",
  ignore: openssl.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
    assert.ok(server.events("certificate_loaded").length === 1, server.describe());
    for (const [cipher, suite] of EC_SUITES) {
      await t.step(cipher, async () => {
        await assertCertificateSession(
          server,
          await sClient(server.port, ["-cipher", cipher]),
          suite,
        );
      });
    }
    for (const groups of ["X25519:P-256", "P-384:P-256"]) {
      await t.step(`groups ${groups}`, async () => {
        const result = await sClient(server.port, [
          "-cipher",
          "ECDHE-ECDSA-AES128-GCM-SHA256",
          "-groups",
          groups,
        ]);
        assert.ok(result.reply, show(server, result));
      });
    }
  },
});

Deno.test({
  name:
    "openssl s_client verifies our RSA chain on every ECDHE_RSA suite, with PSS and PKCS#1 signatures",
  ignore: openssl.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([...certificateArgs(pki.rsaCert, pki.rsaKey)]);
    for (const [cipher, suite] of RSA_SUITES) {
      await t.step(cipher, async () => {
        await assertCertificateSession(
          server,
          await sClient(server.port, ["-cipher", cipher]),
          suite,
        );
      });
    }
    for (const sigalgs of ["rsa_pss_rsae_sha384", "RSA+SHA256", "RSA+SHA384"]) {
      await t.step(`sigalgs ${sigalgs}`, async () => {
        const result = await sClient(server.port, [
          "-cipher",
          "ECDHE-RSA-AES128-GCM-SHA256",
          "-sigalgs",
          sigalgs,
        ]);
        assert.ok(result.reply, show(server, result));
      });
    }
  },
});

Deno.test({
  name: "a P-384 certificate signs with ecdsa_secp384r1_sha384",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    await using server = await startServer([...certificateArgs(pki.p384Cert, pki.p384Key)]);
    const result = await sClient(server.port, [
      "-cipher",
      "ECDHE-ECDSA-AES256-GCM-SHA384",
      "-sigalgs",
      "ecdsa_secp384r1_sha384",
    ]);
    await assertCertificateSession(server, result, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
  },
});

Deno.test({
  name: "PSK keeps working beside a certificate: the server chooses by what the client offers",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    const keys = `${pki.dir}/demo.psk`;
    Deno.writeTextFileSync(keys, `${DEMO.identity}:${DEMO.keyHex}\n`);
    Deno.chmodSync(keys, 0o600);
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--psk-file",
      keys,
    ]);
    const result = await runPeer("openssl", [
      "s_client",
      "-dtls1_2",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-psk",
      DEMO.keyHex,
      "-psk_identity",
      DEMO.identity,
      "-cipher",
      "PSK-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256",
    ], { input: "Message #1\n", until: ACK, timeoutMs: TIMEOUT_MS });
    assert.ok(result.reply, show(server, result));
    const complete = await server.waitFor((e) => e.event === "handshake_complete", 5_000);
    assert.equal(complete.suite, "TLS_PSK_WITH_AES_128_GCM_SHA256");
  },
});

Deno.test({
  name:
    "a client that takes only another curve than our certificate's is refused with handshake_failure",
  ignore: openssl.ignore,
  async fn() {
    // RFC 8422 §5.1: no ECC suite unless the handshake respects the
    // client's curves, the certificate's included.
    const pki = testPki();
    await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
    const result = await sClient(server.port, [
      "-cipher",
      "ECDHE-ECDSA-AES128-GCM-SHA256",
      "-groups",
      "P-384",
    ]);
    assert.equal(result.reply, undefined, show(server, result));
    await server.waitFor(
      (e) => e.event === "alert_sent" && e.description === "handshake_failure",
      5_000,
    );
  },
});

Deno.test({
  name: "a bad --cert or --key stops the start with one line naming the file and the reason",
  ignore: openssl.ignore,
  async fn(t) {
    const pki = testPki();
    const cases: [string, string[], RegExp][] = [
      ["expired", [...certificateArgs(pki.expiredCert, `${pki.dir}/expired.key`)], /expired/],
      [
        "key of another certificate",
        [...certificateArgs(pki.ecCert, pki.strayKey)],
        /not the key of the certificate/,
      ],
      [
        "RSA of 1024 bits",
        [...certificateArgs(pki.rsa1024Cert, pki.rsa1024Key)],
        /RSA key of 1024 bits: at least 2048/,
      ],
      [
        "unreadable",
        [...certificateArgs(`${pki.dir}/missing.pem`, pki.ecKey)],
        /^Cannot read --cert .*missing\.pem/,
      ],
      ["not PEM", [...certificateArgs(pki.ecKey, pki.ecKey)], /no PEM certificate/],
      ["--cert alone", ["--cert", pki.ecCert], /Cannot use --cert without --key/],
      ["--key alone", ["--key", pki.ecKey], /Cannot use --key without --cert/],
    ];
    for (const [name, args, pattern] of cases) {
      await t.step(name, async () => {
        const r = await runMain(["--port", "0", ...args]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr.split("\n")[0]!, pattern);
        assert.equal(r.stdout, "", "nothing started");
      });
    }
  },
});

Deno.test({
  name:
    "our client verifies our server's chain through an intermediate and gets the ACK; a wrong name is refused",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    await using server = await startServer([...certificateArgs(pki.chainedBundle, pki.chainedKey)]);
    const client = (extra: string[]) =>
      runMain([
        "client",
        "--connect",
        `127.0.0.1:${server.port}`,
        "--ca",
        pki.caCert,
        "--timeout",
        "5",
        ...extra,
      ]);
    const good = await client(["--server-name", "localhost"]);
    assert.equal(good.code, 0, good.stderr + server.describe());
    assert.match(good.stdout, /^connected: TLS_ECDHE_ECDSA_WITH_\S+, DTLS 1\.2\n/);
    assert.match(good.stdout, ACK);
    const wrongName = await client(["--server-name", "example.org"]);
    assert.equal(wrongName.code, 1, wrongName.stdout);
    assert.match(wrongName.stderr, /is not for example\.org/);
    await server.waitFor(
      (e) => e.event === "alert_received" && e.description === "bad_certificate",
      5_000,
    );
  },
});

Deno.test({
  name: "our client verifies OpenSSL's s_server certificate (RSA) and completes the handshake",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const server = new Deno.Command("openssl", {
      args: [
        "s_server",
        "-dtls1_2",
        "-accept",
        `127.0.0.1:${port}`,
        "-cert",
        pki.rsaCert,
        "-key",
        pki.rsaKey,
        "-quiet",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      await new Promise((r) => setTimeout(r, 500));
      const r = await runMain([
        "client",
        "--connect",
        `127.0.0.1:${port}`,
        "--ca",
        pki.caCert,
        "--server-name",
        "localhost",
        "--timeout",
        "3",
      ]);
      // s_server does not answer by itself: the handshake is what is judged.
      assert.match(r.stdout, /^connected: TLS_ECDHE_RSA_WITH_\S+, DTLS 1\.2\n/, r.stderr);
    } finally {
      server.kill("SIGKILL");
      await server.output();
    }
  },
});

const gnutls = skipUnless("gnutls-cli", "openssl");

Deno.test({
  name: "gnutls-cli trusts our EC and RSA chains (X.509) and gets the ACK",
  ignore: gnutls.ignore,
  async fn(t) {
    const pki = testPki();
    for (
      const [name, cert, key, description] of [
        ["EC", pki.ecCert, pki.ecKey, /\(ECDSA-SHA256\)/],
        ["RSA", pki.rsaCert, pki.rsaKey, /\(RSA-PSS-RSAE-SHA256\)|\(RSA-SHA256\)/],
      ] as const
    ) {
      await t.step(name, async () => {
        await using server = await startServer([...certificateArgs(cert, key)]);
        const result = await runPeer("gnutls-cli", [
          "--udp",
          "--port",
          String(server.port),
          "localhost",
          "--x509cafile",
          pki.caCert,
          "--priority",
          "NORMAL:-VERS-ALL:+VERS-DTLS1.2",
        ], { input: "Message #1\n", until: ACK, timeoutMs: TIMEOUT_MS });
        const context = show(server, result);
        assert.ok(result.reply, context);
        assert.match(result.stdout, /The certificate is trusted/, context);
        assert.match(result.stdout, description, context);
      });
    }
  },
});

const CAPTURE = captureSkip();

Deno.test({
  name: "tshark decrypts a certificate session through the server's --keylog file",
  ...CAPTURE,
  async fn() {
    const pki = testPki();
    const keylog = `${pki.dir}/keylog-${crypto.randomUUID()}.txt`;
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--keylog",
      keylog,
    ]);
    assert.equal(server.events("keylog_enabled").length, 1, server.describe());
    assert.equal(Deno.statSync(keylog).mode! & 0o077, 0, "the key log is the owner's alone");
    // tshark reads the key log as it decodes: it is there before the session.
    await using tshark = await startTshark(server.port, ["-o", `tls.keylog_file:${keylog}`]);
    const result = await sClient(server.port, ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert.ok(result.reply, show(server, result));
    const clientPort = Number(result.reply[1]);
    assert.match(Deno.readTextFileSync(keylog), /^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}\n$/);
    await tshark.waitForOutput(
      new RegExp(`^${server.port}\\|23\\|1\\|\\|${hex(`to (127.0.0.1:${clientPort}): ACK`)}`, "m"),
      TIMEOUT_MS,
    );
    await tshark.stop("SIGINT");
    const decoded = parseDecoded(tshark.stdout);
    const fromClient = decoded.filter((d) => d.srcPort === clientPort).map((d) => d.data).join("");
    assert.ok(fromClient.startsWith(hex("Message #1\n")), tshark.describe());
    assert.deepEqual(decoded.filter((d) => d.malformed !== ""), [], tshark.describe());
  },
});

Deno.test({
  name: "--keylog to a file that cannot be written stops the start with one line",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    const r = await runMain([
      "--port",
      "0",
      "--cert",
      pki.ecCert,
      "--key",
      pki.ecKey,
      "--keylog",
      "/nonexistent/dir/keys.log",
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^Cannot write --keylog \/nonexistent\/dir\/keys\.log/);
  },
});

Deno.test({
  name:
    "client authentication: openssl s_client with a client certificate is identified in the log; without one it is refused",
  ignore: openssl.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--client-ca",
      pki.caCert,
    ]);
    await t.step("with a certificate", async () => {
      const result = await sClient(server.port, [
        "-cipher",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "-cert",
        pki.clientCert,
        "-key",
        pki.clientKey,
      ]);
      assert.ok(result.reply, show(server, result));
      const complete = await server.waitFor(
        (e) => e.event === "handshake_complete" && e.peerSubject === "CN=device-1",
        5_000,
      );
      assert.match(String(complete.peerSpkiSha256), /^[0-9a-f]{64}$/);
    });
    await t.step("without one", async () => {
      const result = await sClient(server.port, ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
      assert.equal(result.reply, undefined, show(server, result));
      await server.waitFor(
        (e) => e.event === "alert_sent" && e.description === "handshake_failure",
        5_000,
      );
    });
    await t.step("our client with --cert/--key", async () => {
      const r = await runMain([
        "client",
        "--connect",
        `127.0.0.1:${server.port}`,
        "--ca",
        pki.caCert,
        "--server-name",
        "localhost",
        "--cert",
        pki.clientCert,
        "--key",
        pki.clientKey,
        "--timeout",
        "5",
      ]);
      assert.equal(r.code, 0, r.stderr + server.describe());
      assert.match(r.stdout, ACK);
    });
  },
});

Deno.test({
  name: "client authentication optional: a client without a certificate is served",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--client-ca",
      pki.caCert,
      "--client-auth",
      "optional",
    ]);
    const result = await sClient(server.port, ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert.ok(result.reply, show(server, result));
  },
});

Deno.test({
  name:
    "raw public keys (RFC 7250) with gnutls-cli: our key alone instead of the chain, and a client's key from --client-keys",
  ignore: gnutls.ignore,
  async fn(t) {
    const pki = testPki();
    const clientPub = `${pki.dir}/client.pub`;
    const out = new Deno.Command("openssl", {
      args: ["pkey", "-in", pki.clientKey, "-pubout", "-out", clientPub],
    }).outputSync();
    assert.ok(out.success);
    const gnutlsCli = (port: number, priority: string, extra: string[] = []) =>
      runPeer("gnutls-cli", [
        "--udp",
        "--port",
        String(port),
        "localhost",
        // A raw key has no chain to check: the test looks at what was agreed.
        "--insecure",
        "--priority",
        `NORMAL:-VERS-ALL:+VERS-DTLS1.2:${priority}`,
        ...extra,
      ], { input: "Message #1\n", until: ACK, timeoutMs: TIMEOUT_MS });
    await t.step("the server's raw public key", async () => {
      await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
      const result = await gnutlsCli(server.port, "+CTYPE-SRV-RAWPK:-CTYPE-SRV-X509");
      assert.ok(result.reply, show(server, result));
      assert.match(result.stdout, /\(DTLS1\.2-X\.509-Raw Public Key\)/, show(server, result));
    });
    await t.step("the client's raw public key, trusted by --client-keys", async () => {
      await using server = await startServer([
        ...certificateArgs(pki.ecCert, pki.ecKey),
        "--client-keys",
        clientPub,
      ]);
      const result = await gnutlsCli(server.port, "+CTYPE-CLI-RAWPK", [
        "--rawpkkeyfile",
        pki.clientKey,
        "--rawpkfile",
        clientPub,
      ]);
      assert.ok(result.reply, show(server, result));
      const complete = await server.waitFor((e) => e.event === "handshake_complete", 5_000);
      assert.equal(complete.peerSubject, "raw public key");
      assert.match(String(complete.peerSpkiSha256), /^[0-9a-f]{64}$/);
    });
    await t.step("a client key that is not one of --client-keys is refused", async () => {
      await using server = await startServer([
        ...certificateArgs(pki.ecCert, pki.ecKey),
        "--client-keys",
        clientPub,
      ]);
      const strayPub = `${pki.dir}/stray.pub`;
      new Deno.Command("openssl", {
        args: ["pkey", "-in", pki.strayKey, "-pubout", "-out", strayPub],
      })
        .outputSync();
      const result = await gnutlsCli(server.port, "+CTYPE-CLI-RAWPK", [
        "--rawpkkeyfile",
        pki.strayKey,
        "--rawpkfile",
        strayPub,
      ]);
      assert.equal(result.reply, undefined, show(server, result));
      await server.waitFor(
        (e) => e.event === "alert_sent" && e.description === "bad_certificate",
        5_000,
      );
    });
  },
});

Deno.test({
  name: "our client pins our server's raw public key with --server-key and gets the ACK",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    const serverPub = `${pki.dir}/ec.pub`;
    assert.ok(
      new Deno.Command("openssl", {
        args: ["pkey", "-in", pki.ecKey, "-pubout", "-out", serverPub],
      })
        .outputSync().success,
    );
    await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
    const r = await runMain([
      "client",
      "--connect",
      `127.0.0.1:${server.port}`,
      "--server-key",
      serverPub,
      "--timeout",
      "5",
    ]);
    assert.equal(r.code, 0, r.stderr + server.describe());
    assert.match(r.stdout, /^connected: TLS_ECDHE_ECDSA_WITH_\S+, DTLS 1\.2\n/);
    assert.match(r.stdout, ACK);
  },
});

Deno.test({
  name:
    "SIGHUP reloads --cert and --key: an EC server becomes an RSA one; a broken file keeps the old",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    const cert = `${pki.dir}/reload-${crypto.randomUUID()}.pem`;
    const key = `${pki.dir}/reload-${crypto.randomUUID()}.key`;
    Deno.copyFileSync(pki.ecCert, cert);
    Deno.copyFileSync(pki.ecKey, key);
    Deno.chmodSync(key, 0o600);
    await using server = await startServer(certificateArgs(cert, key));
    const ecdsa = ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"];
    const rsa = ["-cipher", "ECDHE-RSA-AES128-GCM-SHA256"];
    assert.ok((await sClient(server.port, ecdsa)).reply, server.describe());
    Deno.copyFileSync(pki.rsaCert, cert);
    Deno.copyFileSync(pki.rsaKey, key);
    Deno.kill(server.pid, "SIGHUP");
    await server.waitFor((e) => e.event === "certificate_reloaded", 5_000);
    assert.ok((await sClient(server.port, rsa)).reply, server.describe());
    assert.equal(
      (await sClient(server.port, ecdsa)).reply,
      undefined,
      "the EC certificate is gone",
    );
    // A key that is not the certificate's: refused, and the RSA one stays.
    Deno.copyFileSync(pki.strayKey, key);
    Deno.kill(server.pid, "SIGHUP");
    await server.waitFor((e) => e.event === "certificate_reload_failed", 5_000);
    assert.ok((await sClient(server.port, rsa)).reply, server.describe());
  },
});
