/**
 * End to end with wolfSSL 5.7's example client (built from Debian 13's
 * source by .ci/debian13-peers, with DTLS 1.3):
 *
 * - DTLS 1.3 (`-v 4`) with its compiled-in external PSK (identity
 *   `Client_identity` + the suite's hash name, a 32-byte key) on every
 *   suite, with (EC)DHE and without (`-K`), after a HelloRetryRequest for
 *   its key share (`-J`), with a KeyUpdate it asks to be answered (`-I`),
 *   with Connection IDs both ways (`--cid`);
 *   offering 1.3 and 1.2 (`-v d`), answered with 1.3, or with 1.2 by a
 *   server told `--versions 1.2`;
 * - DTLS 1.3 authenticated by our certificate (EC and RSA), the client
 *   trusting the test CA (`-A`), and resuming with our NewSessionTicket (`-r`);
 *   presenting its certificate to `--client-ca` (`-c`/`-k`), or none (`-x`);
 * - DTLS 1.2 with its 1.2 PSK (identity `Client_identity`, key 1a2b3c4d).
 *   Its default DTLS 1.2 PSK suite list has none we speak: it is refused
 *   with handshake_failure.
 */
import assert from "node:assert/strict";
import { runPeer, type ServerProcess, startServer } from "../helpers/server_process.ts";
import type { RunPeerResult } from "../helpers/server_process.ts";
import { wolfssl57, wolfsslRoot } from "../helpers/debian13_peers.ts";
import { testPki } from "../helpers/pki.ts";

const TIMEOUT_MS = 20_000;
const ACK = /to \(127\.0\.0\.1:\d+\): ACK/;

/** The example client's 1.3 key: 0x01, then 0x22 more a byte, wrapping to 0x01 (wolfssl/test.h). */
const KEY_13 = "0123456789abcdef".repeat(4);

/** The key file of the example client's PSKs, 1.2 and 1.3, mode 0600. */
function keyFile(): string {
  const path = Deno.makeTempFileSync({ prefix: "wolfssl-keys-" });
  Deno.chmodSync(path, 0o600);
  Deno.writeTextFileSync(
    path,
    `Client_identity:1a2b3c4d\nClient_identitySHA256:${KEY_13}\nClient_identitySHA384:${KEY_13}\n`,
  );
  globalThis.addEventListener("unload", () => Deno.removeSync(path));
  return path;
}

/** The example client with its PSK (`-s`), or, with `psk` false, checking our certificate. */
function client(port: number, args: readonly string[], psk = true): Promise<RunPeerResult> {
  return runPeer(
    "sh",
    [
      "-c",
      `cd "${wolfsslRoot()}" && exec "${wolfssl57.client()}" -u ${
        psk ? "-s " : ""
      }-h 127.0.0.1 -p ${port} ${args.join(" ")}`,
    ],
    { timeoutMs: TIMEOUT_MS },
  );
}

function show(server: ServerProcess, result: RunPeerResult): string {
  return `exit ${result.code}, timed out ${result.timedOut}\n--- client stdout:\n${result.stdout}\n` +
    `--- client stderr:\n${result.stderr}\n${server.describe()}`;
}

for (
  const [name, args] of [
    ["DTLS 1.2", ["-v", "3", "-l", "PSK-AES128-GCM-SHA256"]],
    ["DTLS 1.2 on PSK-CHACHA20-POLY1305", ["-v", "3", "-l", "PSK-CHACHA20-POLY1305"]],
  ] as const
) {
  Deno.test({
    name: `wolfSSL 5.7 client: ${name}`,
    ignore: wolfssl57.ignore,
    async fn() {
      await using server = await startServer(["--psk-file", keyFile()]);
      const result = await client(server.port, args);
      const context = show(server, result);
      assert.equal(result.code, 0, context);
      assert.match(result.stdout, /SSL version is DTLSv1\.2/, context);
      assert.match(result.stdout, ACK, context);
      const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
      assert.equal(complete.version, "DTLS 1.2", context);
      assert.equal(complete.identity, "Client_identity", context);
      assert.equal(await server.stop(), 0);
    },
  });
}

/** wolfSSL's names of the DTLS 1.3 suites, and the IANA names our server logs. */
const SUITES_13 = [
  ["TLS13-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"],
  ["TLS13-AES256-GCM-SHA384", "TLS_AES_256_GCM_SHA384"],
  ["TLS13-CHACHA20-POLY1305-SHA256", "TLS_CHACHA20_POLY1305_SHA256"],
  ["TLS13-AES128-CCM-SHA256", "TLS_AES_128_CCM_SHA256"],
  ["TLS13-AES128-CCM-8-SHA256", "TLS_AES_128_CCM_8_SHA256"],
] as const;

/** The example client's variations: (EC)DHE by default, `-K` without, `-J` asks for HRR, `-I` a KeyUpdate. */
const MODES_13 = [
  ["psk_dhe_ke", [], true],
  ["psk_ke (-K)", ["-K"], false],
  ["a HelloRetryRequest for its key share (-J)", ["-J"], true],
  ["a KeyUpdate answered (-I)", ["-I"], true],
  ["Connection IDs both ways (--cid)", ["--cid", "CLICID7"], true],
] as const;

for (const [wolfName, ianaName] of SUITES_13) {
  Deno.test({
    name: `wolfSSL 5.7 client: DTLS 1.3 on ${ianaName}, every mode`,
    ignore: wolfssl57.ignore,
    async fn() {
      await using server = await startServer(["--psk-file", keyFile(), "--log-level", "debug"]);
      for (const [mode, extra, dhe] of MODES_13) {
        const result = await client(server.port, ["-v", "4", "-l", wolfName, ...extra]);
        const context = `${mode}\n${show(server, result)}`;
        assert.equal(result.code, 0, context);
        assert.match(result.stdout, /SSL version is DTLSv1\.3/, context);
        assert.match(result.stdout, new RegExp(`SSL cipher suite is ${ianaName}`), context);
        // The answer names the client's address: its events are found by it.
        const peer = /to \((127\.0\.0\.1:\d+)\): ACK/.exec(result.stdout)?.[1];
        assert.ok(peer !== undefined, context);
        const complete = await server.waitForEvent("handshake_complete", { peer }, TIMEOUT_MS);
        assert.equal(complete.version, "DTLS 1.3", context);
        assert.equal(complete.suite, ianaName, context);
        assert.equal(complete.identity, `Client_identity${wolfName.slice(-6)}`, context);
        assert.equal(complete.group !== undefined, dhe, context);
        if (mode.includes("Connection IDs")) {
          // It says so, and which of ours it sends: six bytes (--cid-length's default),
          // each printed in hex without its leading zero.
          assert.match(result.stdout, /CID extension was negotiated/, context);
          assert.match(result.stdout, /Sending CID is [0-9a-f]{6,12}\n/, context);
        }
        if (mode.includes("KeyUpdate")) {
          const received = await server.waitForEvent(
            "key_update",
            { peer, direction: "received" },
            TIMEOUT_MS,
          );
          assert.equal(received.epoch, 4, context);
          await server.waitForEvent("key_update", { peer, direction: "sent" }, TIMEOUT_MS);
        }
        // wolfSSL 5.7's client sends no close_notify on CCM_8 (to its own server either: seen with tshark).
        if (ianaName !== "TLS_AES_128_CCM_8_SHA256") {
          const closed = await server.waitForEvent("connection_closed", { peer }, TIMEOUT_MS);
          assert.equal(closed.error, false, context);
        }
      }
      assert.equal(await server.stop(), 0);
    },
  });
}

for (
  const [name, serverArgs, version] of [
    ["offering DTLS 1.3 and 1.2 (-v d), answered with 1.3", [], "1.3"],
    ["offering DTLS 1.3 and 1.2 (-v d) to a server told --versions 1.2, answered with 1.2", [
      "--versions",
      "1.2",
    ], "1.2"],
  ] as const
) {
  Deno.test({
    name: `wolfSSL 5.7 client: ${name}`,
    ignore: wolfssl57.ignore,
    async fn() {
      await using server = await startServer(["--psk-file", keyFile(), ...serverArgs]);
      const result = await client(server.port, [
        "-v",
        "d",
        "-l",
        "TLS13-AES128-GCM-SHA256:PSK-AES128-GCM-SHA256",
      ]);
      const context = show(server, result);
      assert.equal(result.code, 0, context);
      assert.match(
        result.stdout,
        new RegExp(`SSL version is DTLSv${version.replace(".", "\\.")}`),
        context,
      );
      assert.match(result.stdout, ACK, context);
      const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
      assert.equal(complete.version, `DTLS ${version}`, context);
      assert.equal(await server.stop(), 0);
    },
  });
}

for (const [name, keyType] of [["EC P-256", "ec"], ["RSA", "rsa"]] as const) {
  Deno.test({
    name: `wolfSSL 5.7 client: DTLS 1.3 authenticated by our ${name} certificate`,
    ignore: wolfssl57.ignore,
    async fn() {
      const pki = testPki();
      const [cert, key] = keyType === "ec" ? [pki.ecCert, pki.ecKey] : [pki.rsaCert, pki.rsaKey];
      await using server = await startServer(["--cert", cert, "--key", key, "--mtu", "400"]);
      for (const suite of ["TLS13-AES128-GCM-SHA256", "TLS13-AES256-GCM-SHA384"]) {
        const result = await client(server.port, ["-v", "4", "-l", suite, "-A", pki.caCert], false);
        const context = `${suite}\n${show(server, result)}`;
        assert.equal(result.code, 0, context);
        assert.match(result.stdout, /SSL version is DTLSv1\.3/, context);
        const peer = /to \((127\.0\.0\.1:\d+)\): ACK/.exec(result.stdout)?.[1];
        assert.ok(peer !== undefined, context);
        const complete = await server.waitForEvent("handshake_complete", { peer }, TIMEOUT_MS);
        assert.equal(complete.version, "DTLS 1.3", context);
        assert.equal(complete.identity, "", context);
      }
      // It reconnects with the ticket it was given: resumed, no certificate.
      const resumed = await client(server.port, ["-v", "4", "-A", pki.caCert, "-r"], false);
      const context = show(server, resumed);
      assert.equal(resumed.code, 0, context);
      assert.match(resumed.stdout, /SSL reused session/, context);
      const peers = [...resumed.stdout.matchAll(/to \((127\.0\.0\.1:\d+)\): ACK/g)].map((m) =>
        m[1]
      );
      assert.equal(peers.length, 2, context);
      const second = await server.waitForEvent(
        "handshake_complete",
        { peer: peers[1] },
        TIMEOUT_MS,
      );
      assert.equal(second.resumed, "ticket", context);
      assert.equal(second.version, "DTLS 1.3", context);
      // A client that trusts another CA refuses our chain.
      const refused = await client(server.port, ["-v", "4", "-A", pki.untrustedCert], false);
      assert.notEqual(refused.code, 0, show(server, refused));
      assert.doesNotMatch(refused.stdout, ACK);
      assert.equal(await server.stop(), 0);
    },
  });
}

Deno.test({
  name:
    "wolfSSL 5.7 client: DTLS 1.3 with client authentication: its certificate checked, none refused",
  ignore: wolfssl57.ignore,
  async fn() {
    const pki = testPki();
    await using server = await startServer([
      "--cert",
      pki.ecCert,
      "--key",
      pki.ecKey,
      "--client-ca",
      pki.caCert,
    ]);
    const result = await client(server.port, [
      "-v",
      "4",
      "-A",
      pki.caCert,
      "-c",
      pki.clientCert,
      "-k",
      pki.clientKey,
    ], false);
    const context = show(server, result);
    assert.equal(result.code, 0, context);
    assert.match(result.stdout, ACK, context);
    const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
    assert.equal(complete.version, "DTLS 1.3", context);
    assert.equal(complete.peerSubject, "CN=device-1", context);
    // Without a certificate (-x): certificate_required.
    const refused = await client(server.port, ["-v", "4", "-A", pki.caCert, "-x"], false);
    assert.notEqual(refused.code, 0, show(server, refused));
    const closed = await server.waitForEvent(
      "connection_closed",
      { reason: "Cannot continue: the client sent no certificate" },
      TIMEOUT_MS,
    );
    assert.equal(closed.error, true);
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "wolfSSL 5.7 client: its default DTLS 1.2 PSK suites, none of them ours, are refused",
  ignore: wolfssl57.ignore,
  async fn() {
    await using server = await startServer(["--psk-file", keyFile()]);
    const result = await client(server.port, ["-v", "3"]);
    const context = show(server, result);
    assert.notEqual(result.code, 0, context);
    const closed = await server.waitForEvent("connection_closed", {}, TIMEOUT_MS);
    assert.match(String(closed.reason), /no common cipher suite/, context);
    assert.equal(await server.stop(), 0);
  },
});
