/**
 * Findings of the adversarial review of 497e199 (client authentication,
 * --client-ca / --client-auth) and fa9c3b9 (--keylog). Each test FAILS on
 * the code as reviewed. In-process handshakes on virtual time
 * (tests/helpers/sim.ts); needs `openssl` for the test PKI.
 */
import assert from "node:assert/strict";
import { suiteByName } from "../../src/record/suites.ts";
import { ContentType, parseRecords } from "../../src/record/header.ts";
import { parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { HandshakeType } from "../../src/handshake/messages.ts";
import { type NetworkScript, Pair, PEER, sentAlert } from "../helpers/sim.ts";
import {
  CERT_TIME,
  clientAuthServer,
  clientCertificate,
  testCaClientCheck,
  trustingClient,
} from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { pemBlocks } from "../../src/pki/server_certificate.ts";
import { skipUnless } from "../helpers/server_process.ts";
import { carriesHandshake } from "../helpers/hostile_peer.ts";

const openssl = skipUnless("openssl");
const SUITE = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";

function clientAuthPair(
  client: { cert: string; key: string },
  options: { mtu?: number; script?: NetworkScript; seed?: string } = {},
): Pair {
  return new Pair({
    start: CERT_TIME,
    seed: options.seed ?? `review-clientauth/${client.cert}`,
    server: clientAuthServer(),
    client: {
      ...trustingClient(),
      suites: [suiteByName(SUITE)],
      ...clientCertificate(client.cert, client.key),
    },
    ...(options.mtu === undefined ? {} : { mtu: options.mtu }),
    ...(options.script === undefined ? {} : { script: options.script }),
  });
}

function serverPeer(pair: Pair): string | undefined {
  const done = pair.serverEvents.find((e) => e.type === "handshake_complete");
  return done?.type === "handshake_complete" ? done.peerCertificate?.subject : undefined;
}

// ---- 1. certificate purpose: any certificate the CA issued authenticates a client ----------

Deno.test({
  name:
    "review client auth: a server certificate (extendedKeyUsage serverAuth only) is refused as a client certificate",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    // ec.pem: CN=localhost, EKU serverAuth, issued by the CA the server trusts
    // for clients. Whoever holds any server key of that CA becomes a "client".
    const pair = clientAuthPair({ cert: pki.ecCert, key: pki.ecKey });
    pair.run();
    assert.equal(
      serverPeer(pair),
      undefined,
      `authenticated as ${serverPeer(pair)} with a serverAuth-only certificate`,
    );
    assert.equal(pair.client.isEstablished, false);
    // RFC 5246 §7.2.2: unsupported_certificate (or bad_certificate).
    assert.match(sentAlert(pair.serverEvents) ?? "", /unsupported_certificate|bad_certificate/);
  },
});

Deno.test({
  name:
    "review client auth: a CA certificate (basicConstraints CA:TRUE) is refused as a client leaf",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const pair = clientAuthPair({
      cert: `${pki.dir}/intermediate.pem`,
      key: `${pki.dir}/intermediate.key`,
    });
    pair.run();
    assert.equal(
      serverPeer(pair),
      undefined,
      `authenticated as ${serverPeer(pair)} with a CA certificate as leaf`,
    );
    assert.equal(pair.client.isEstablished, false);
  },
});

// ---- 2. a benign network event fails a legitimate client -------------------------------------
//
// Our client packs CertificateVerify, ChangeCipherSpec and Finished into one
// datagram, but other stacks send a record per datagram (or split at the
// MTU): these scripts split that datagram into [CertificateVerify] and
// [ChangeCipherSpec, Finished], as such a client would have sent them.

type Raw = { raw: Uint8Array };
function join(records: readonly Raw[]): Uint8Array {
  const out = new Uint8Array(records.reduce((n, r) => n + r.raw.length, 0));
  let at = 0;
  for (const r of records) {
    out.set(r.raw, at);
    at += r.raw.length;
  }
  return out;
}

/** Hands `datagram` to the server and keeps its events (a failed connection leaves the table). */
function inject(pair: Pair, datagram: Uint8Array): void {
  pair.endpoint.handleDatagram(datagram, PEER, pair.now);
  for (let e = pair.server?.pollEvent(); e; e = pair.server?.pollEvent()) pair.serverEvents.push(e);
}

/** [the CertificateVerify record(s)], [everything else] of a datagram carrying it. */
function splitAtCertificateVerify(datagram: Uint8Array): [Uint8Array, Uint8Array] {
  const records = parseRecords(datagram).records;
  const isCv = (r: (typeof records)[number]) =>
    r.type === ContentType.Handshake && r.epoch === 0 &&
    parseHandshakeFragments(r.fragment).some((f) => f.msgType === HandshakeType.CertificateVerify);
  return [join(records.filter(isCv)), join(records.filter((r) => !isCv(r)))];
}

Deno.test({
  name:
    "review client auth: a duplicated ChangeCipherSpec datagram overtaking the CertificateVerify does not fail a legitimate client",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    let done = false;
    const pair: Pair = clientAuthPair({ cert: pki.clientCert, key: pki.clientKey }, {
      seed: "review-clientauth/dup-ccs",
      script: (direction, _index, datagram) => {
        if (
          done || direction !== "c2s" ||
          !carriesHandshake(datagram, HandshakeType.CertificateVerify)
        ) {
          return "deliver";
        }
        done = true;
        const [cv, rest] = splitAtCertificateVerify(datagram);
        // The network reorders the two datagrams and duplicates the second
        // (RFC 6347 §4.1: DTLS copes with both; epoch 0 has no replay window).
        inject(pair, rest);
        inject(pair, rest);
        inject(pair, cv);
        return "drop";
      },
    });
    pair.run();
    assert.ok(done);
    assert.equal(
      pair.client.isEstablished,
      true,
      `server sent ${sentAlert(pair.serverEvents)} to a legitimate client`,
    );
    assert.equal(serverPeer(pair), "CN=device-1");
  },
});

Deno.test({
  name:
    "review client auth: a CertificateVerify datagram lost twice is recovered by the next retransmission",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    let lost = 0;
    const pair: Pair = clientAuthPair({ cert: pki.clientCert, key: pki.clientKey }, {
      seed: "review-clientauth/cv-lost",
      script: (direction, _index, datagram) => {
        if (direction !== "c2s" || !carriesHandshake(datagram, HandshakeType.CertificateVerify)) {
          return "deliver";
        }
        const [cv, rest] = splitAtCertificateVerify(datagram);
        // Lossy link: the CertificateVerify's datagram is lost in the first
        // flight and in its first retransmission, and arrives the third time.
        if (lost < 2) lost++;
        else inject(pair, cv);
        inject(pair, rest);
        return "drop";
      },
    });
    pair.run();
    assert.equal(lost, 2);
    assert.equal(
      pair.client.isEstablished,
      true,
      `server sent ${sentAlert(pair.serverEvents)} after two lost datagrams`,
    );
  },
});

// ---- 3. unbounded work in the chain check, before any proof of the key -----------------------

function run(dir: string, args: string[]): string {
  const out = new Deno.Command("openssl", { args, cwd: dir, stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * A chain any client can make without the CA's help: a leaf signed by A, A
 * and B (CA:TRUE, one name) signing each other, and `decoys` copies of a
 * CA certificate with that name and A's key identifier but another key.
 * The walk goes L→A→B→A… for its 8 levels and tries every decoy at each.
 */
function loopingChain(decoys: number): Uint8Array[] {
  const dir = Deno.makeTempDirSync({ prefix: "review-loop-" });
  try {
    Deno.writeTextFileSync(`${dir}/ca.ext`, "basicConstraints=critical,CA:TRUE\n");
    Deno.writeTextFileSync(`${dir}/leaf.ext`, "basicConstraints=critical,CA:FALSE\n");
    for (const k of ["a", "b", "d", "l"]) {
      run(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${k}.key`]);
    }
    const req = (k: string, cn: string) =>
      run(dir, ["req", "-new", "-key", `${k}.key`, "-subj", `/CN=${cn}`, "-out", `${k}.csr`]);
    const sign = (k: string, ca: string, caKey: string, ext: string, serial: string) =>
      run(dir, [
        "x509",
        "-req",
        "-in",
        `${k}.csr`,
        "-CA",
        ca,
        "-CAkey",
        caKey,
        "-set_serial",
        serial,
        "-days",
        "30",
        "-extfile",
        ext,
        "-out",
        `${k}.pem`,
      ]);
    run(dir, [
      "req",
      "-x509",
      "-new",
      "-key",
      "b.key",
      "-subj",
      "/CN=X",
      "-days",
      "30",
      "-out",
      "b0.pem",
    ]);
    req("a", "X");
    sign("a", "b0.pem", "b.key", "ca.ext", "1");
    req("b", "X");
    sign("b", "a.pem", "a.key", "ca.ext", "2");
    req("l", "device-9");
    sign("l", "a.pem", "a.key", "leaf.ext", "3");
    const ski = run(dir, ["x509", "-in", "a.pem", "-noout", "-ext", "subjectKeyIdentifier"])
      .split("\n")[1]!.replaceAll(/[\s:]/g, "");
    run(dir, [
      "req",
      "-x509",
      "-new",
      "-key",
      "d.key",
      "-subj",
      "/CN=X",
      "-days",
      "30",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      `subjectKeyIdentifier=${ski}`,
      "-out",
      "d.pem",
    ]);
    const der = (f: string) => pemBlocks(Deno.readTextFileSync(`${dir}/${f}`), "CERTIFICATE")[0]!;
    return [der("l.pem"), ...Array(decoys).fill(der("d.pem")), der("a.pem"), der("b.pem")];
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "review client auth: a client's chain costs a bounded number of signature checks (no loops, no decoys)",
  ignore: openssl.ignore,
  async fn() {
    const chain = loopingChain(36);
    const bytes = chain.reduce((n, c) => n + 3 + c.length, 0);
    assert.ok(bytes < 16 * 1024, `${bytes} bytes: fits the default maxHandshakeMessage`);
    const check = testCaClientCheck();
    const { X509Certificate } = await import("node:crypto");
    const original = X509Certificate.prototype.verify;
    let verifies = 0;
    X509Certificate.prototype.verify = function (this: InstanceType<typeof X509Certificate>, key) {
      verifies++;
      return original.call(this, key);
    };
    let verdict;
    const start = performance.now();
    try {
      verdict = check(chain, Date.now());
    } finally {
      X509Certificate.prototype.verify = original;
    }
    const ms = performance.now() - start;
    assert.equal(verdict.ok, false);
    // A real chain of 8 needs 8; anything near a handshake's own cost is fine.
    assert.ok(
      verifies <= 16,
      `${verifies} signature checks (${
        ms.toFixed(0)
      } ms of event loop) for one ${bytes}-byte Certificate`,
    );
  },
});

// ---- 4. the key log takes lines for handshakes that never authenticated ----------------------

Deno.test({
  name:
    "review keylog: a handshake that fails (wrong PSK, unknown identity) writes no key log line",
  fn() {
    const lines: string[] = [];
    for (
      const client of [{ psk: new Uint8Array(6).fill(7) }, {
        identity: new TextEncoder().encode("nobody"),
      }]
    ) {
      const pair = new Pair({
        seed: `review-keylog/${JSON.stringify(client)}`,
        server: { keyLog: (random) => lines.push(`CLIENT_RANDOM ${random.length}`) },
        client,
      });
      pair.run();
      assert.equal(pair.client.isEstablished, false);
    }
    // Each is a line any peer that answers a cookie can append (50/s per
    // address by default): the file grows without authentication.
    assert.deepEqual(lines, [], `${lines.length} lines for failed handshakes`);
  },
});
