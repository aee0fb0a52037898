/**
 * Findings of the adversarial review of 4740f59 (server certificates) that
 * show on the real process: what `--cert`/`--key` do beside the demo key,
 * the key file's permissions, and a certificate that expires while the
 * server runs. Each test FAILS on the code as reviewed. Needs `openssl`.
 */
import { certificateArgs } from "../helpers/certificates.ts";
import assert from "node:assert/strict";
import { testPki } from "../helpers/pki.ts";
import { runPeer, skipUnless, startServer } from "../helpers/server_process.ts";

const openssl = skipUnless("openssl");
const ACK = /to \(127\.0\.0\.1:(\d+)\): ACK/;

function sClient(port: number, ca: string, extra: readonly string[] = []) {
  return runPeer("openssl", [
    "s_client",
    "-dtls1_2",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    ca,
    "-cipher",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    ...extra,
  ], { input: "secret payload\n", until: ACK, timeoutMs: 10_000 });
}

// ---- F-e: --cert without a key file keeps the demo key, and with it plaintext logging ---------

Deno.test({
  name:
    "review certificates live: with --cert/--key and no PSK source, a certificate session's payload is not logged (the demo key's plaintext default must not apply to it)",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
    const result = await sClient(server.port, pki.caCert, ["-verify_return_error"]);
    assert.ok(result.reply, `no ACK\n${result.stderr}\n${server.describe()}`);
    const datagram = await server.waitForEvent("datagram", {}, 5_000);
    assert.equal(
      datagram.plaintext,
      undefined,
      "the payload of a certificate-authenticated session was logged in clear, because no --psk-file means the demo key store, and the demo store on loopback turns plaintext logging on",
    );
  },
});

Deno.test({
  name:
    "review certificates live: --cert/--key alone can serve on a non-loopback address (certificate only, no demo key)",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    // Today: "Cannot use the demo key on non-loopback address 0.0.0.0: give
    // --psk-file, or --allow-demo-key to insist", exit 2. The operator's
    // only ways to a certificate server are a PSK file (an empty one is
    // refused: "no keys") or --allow-demo-key, which lets every PSK client
    // holding the published key 1a2b3c4d5e6f in beside the certificate.
    await using server = await startServer([
      "--address",
      "0.0.0.0",
      "--cert",
      pki.ecCert,
      "--key",
      pki.ecKey,
    ], { startTimeoutMs: 10_000 });
    assert.ok(server.port > 0);
  },
});

// ---- F-f: the certificate's private key file is not checked for permissions ------------------

Deno.test({
  name:
    "review certificates live: a --key readable by group or others is warned about, as a --psk-file is",
  ignore: openssl.ignore,
  async fn() {
    const pki = testPki();
    const key = `${pki.dir}/ec-open.key`;
    Deno.copyFileSync(pki.ecKey, key);
    Deno.chmodSync(key, 0o644);
    await using server = await startServer([...certificateArgs(pki.ecCert, key)]);
    assert.ok(
      server.logs.some((e) => e.level === "warning" && String(e.msg).includes(key)),
      `no warning that the certificate's private key ${key} is world-readable\n${server.describe()}`,
    );
  },
});

// ---- F-g: a certificate that expires while the server runs ------------------------------------

function opensslIn(dir: string, args: string[]): void {
  const out = new Deno.Command("openssl", { args, cwd: dir, stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A self-signed P-256 certificate valid from a minute ago until `seconds` from now. */
function shortLivedCertificate(seconds: number): { cert: string; key: string } {
  const dir = Deno.makeTempDirSync({ prefix: "dtls-review-shortlived-" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  const stamp = (ms: number) =>
    new Date(ms).toISOString().replace(/[-:T]/g, "").replace(/\.\d+Z$/, "Z");
  Deno.mkdirSync(`${dir}/db`);
  Deno.writeTextFileSync(`${dir}/db/index.txt`, "");
  Deno.writeTextFileSync(`${dir}/db/serial`, "01\n");
  Deno.writeTextFileSync(
    `${dir}/ca.cnf`,
    `[ca]\ndefault_ca = t\n[t]\ndir = ${dir}/db\ndatabase = $dir/index.txt\nserial = $dir/serial\n` +
      `new_certs_dir = $dir\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n`,
  );
  opensslIn(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.key"]);
  opensslIn(dir, ["req", "-new", "-key", "k.key", "-subj", "/CN=localhost", "-out", "k.csr"]);
  opensslIn(dir, [
    "ca",
    "-batch",
    "-selfsign",
    "-keyfile",
    "k.key",
    "-in",
    "k.csr",
    "-startdate",
    stamp(Date.now() - 60_000),
    "-enddate",
    stamp(Date.now() + seconds * 1000),
    "-config",
    "ca.cnf",
    "-out",
    "k.pem",
  ]);
  return { cert: `${dir}/k.pem`, key: `${dir}/k.key` };
}

Deno.test({
  name:
    "review certificates live: once the certificate has expired, the server says so (a certificate_* line at warning or above), rather than signing with it in silence",
  ignore: openssl.ignore,
  async fn() {
    const { cert, key } = shortLivedCertificate(4);
    await using server = await startServer([...certificateArgs(cert, key)]);
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    // The server goes on sending the expired chain; OpenSSL rejects it with
    // "certificate has expired" and a certificate_expired alert. A restart
    // now would refuse to start at all (PSK clients included).
    const result = await sClient(server.port, cert, ["-verify_return_error"]);
    assert.equal(result.reply, undefined);
    assert.match(result.stdout + result.stderr, /certificate has expired/);
    await new Promise((resolve) => setTimeout(resolve, 500));
    // The client's certificate_expired alert is logged (alert_received,
    // connection_closed): that is the client speaking, once per client, and
    // it is not told apart from any other failed handshake. What is asked
    // for is the server's own word on its certificate.
    const said = server.logs.filter((e) =>
      e.level === "error" && e.event === "certificate_expired"
    );
    // Ahead of it, at start, a warning that it was about to.
    assert.ok(server.logs.some((e) => e.event === "certificate_expiring"), server.describe());
    assert.ok(
      said.length > 0,
      `an expired certificate is served with no warning, error or metric\n${server.describe()}`,
    );
  },
});
