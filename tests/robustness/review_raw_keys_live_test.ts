/**
 * Findings of the adversarial review of 43cebbb (raw public keys, RFC 7250:
 * --client-keys) that show on the real process with gnutls-cli. Each test
 * FAILS on the code as reviewed. Needs `openssl` and `gnutls-cli`.
 */
import { certificateArgs } from "../helpers/certificates.ts";
import assert from "node:assert/strict";
import { testPki } from "../helpers/pki.ts";
import { runPeer, type ServerProcess, skipUnless, startServer } from "../helpers/server_process.ts";

const gnutls = skipUnless("gnutls-cli", "openssl");
const ACK = /ACK/;

function openssl(args: string[]): void {
  const out = new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** A fresh P-256 key pair in `dir`: the private key and its public key (PEM, as `openssl pkey -pubout`). */
function keyPair(dir: string, name: string): { key: string; pub: string } {
  const key = `${dir}/${name}.key`;
  const pub = `${dir}/${name}.pub`;
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  openssl(["pkey", "-in", key, "-pubout", "-out", pub]);
  return { key, pub };
}

/** gnutls-cli with a client raw public key; `pub` is what it sends. */
function rawClient(port: number, key: string, pub: string) {
  return runPeer("gnutls-cli", [
    "--udp",
    "--port",
    String(port),
    "localhost",
    "--insecure",
    "--priority",
    "NORMAL:-VERS-ALL:+VERS-DTLS1.2:+CTYPE-CLI-RAWPK",
    "--rawpkkeyfile",
    key,
    "--rawpkfile",
    pub,
  ], { input: "Message #1\n", until: ACK, timeoutMs: 10_000 });
}

function show(server: ServerProcess, result: { stdout: string; stderr: string }): string {
  return `gnutls-cli:\n${result.stdout}\n${result.stderr}\n${server.describe()}`;
}

// ---- a key removed from --client-keys stays trusted after SIGHUP ------------------------
//
// --client-keys is the list of who may log in: revoking a device is taking
// its key out of the file. SIGHUP re-reads the PSK file and --cert/--key
// (README "SIGHUP re-reads them"), the operator's reload for every other
// credential, but not --client-keys (nor --client-ca): a key taken out of
// the file keeps authenticating until the process restarts, and nothing
// in the log says so.

Deno.test({
  name:
    "review raw keys live: a key taken out of --client-keys is refused after SIGHUP (revocation)",
  ignore: gnutls.ignore,
  async fn() {
    const pki = testPki();
    const dir = Deno.makeTempDirSync({ prefix: "dtls-rawkeys-" });
    try {
      const device = keyPair(dir, "device");
      const other = keyPair(dir, "other");
      const list = `${dir}/clients.pub`;
      Deno.writeTextFileSync(
        list,
        Deno.readTextFileSync(device.pub) + Deno.readTextFileSync(other.pub),
      );
      await using server = await startServer([
        ...certificateArgs(pki.ecCert, pki.ecKey),
        "--client-keys",
        list,
      ]);
      const before = await rawClient(server.port, device.key, device.pub);
      assert.ok(before.reply, `the listed device was not served\n${show(server, before)}`);

      // The device is revoked: its key leaves the file, the server is told.
      Deno.writeTextFileSync(list, Deno.readTextFileSync(other.pub));
      const reloads = server.logs.length;
      Deno.kill(server.pid, "SIGHUP");
      await server.waitFor((e) => e.event === "certificate_reloaded", 5_000);
      assert.ok(server.logs.length > reloads);

      const after = await rawClient(server.port, device.key, device.pub);
      assert.equal(
        after.reply,
        undefined,
        `a key removed from --client-keys still authenticates after SIGHUP\n${show(server, after)}`,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

// ---- a key listed in compressed form never matches ---------------------------------------
//
// --client-keys entries are compared byte for byte with what the client
// sends, as they were read: a key written with `openssl ec -pubout
// -conv_form compressed` (a valid SubjectPublicKeyInfo, accepted at start)
// never matches the uncompressed SubjectPublicKeyInfo that clients send
// (GnuTLS does not even read a compressed --rawpkfile; OpenSSL, Go and
// node:crypto export uncompressed by default), and the listed device is refused with bad_certificate. The same key
// as X.509 is reported with the SHA-256 of the normalised SubjectPublicKeyInfo
// (chain_verifier exports it), so one key would have two spkiSha256.

Deno.test({
  name:
    "review raw keys live: a --client-keys entry in compressed form authenticates its key's holder",
  ignore: gnutls.ignore,
  async fn() {
    const pki = testPki();
    const dir = Deno.makeTempDirSync({ prefix: "dtls-rawkeys-" });
    try {
      const device = keyPair(dir, "device");
      // The same public key, written compressed: what the operator lists.
      const listed = `${dir}/device-compressed.pub`;
      openssl(["ec", "-in", device.key, "-pubout", "-conv_form", "compressed", "-out", listed]);
      await using server = await startServer([
        ...certificateArgs(pki.ecCert, pki.ecKey),
        "--client-keys",
        listed,
      ]);
      const result = await rawClient(server.port, device.key, device.pub);
      assert.ok(
        result.reply,
        `the holder of a listed (compressed) key was refused\n${show(server, result)}`,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
