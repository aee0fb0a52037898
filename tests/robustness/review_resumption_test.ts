/**
 * Findings of the adversarial review of session resumption, each a test
 * that failed before its fix (docs/security.md lists them):
 *
 * 1. A session a client certificate authenticated resumed after its CA was
 *    taken out of the client authentication policy, or after the
 *    certificate expired.
 * 2. A certificate-suite session resumed on a server without that
 *    certificate (a PSK-only instance sharing the ticket keys).
 * 3. A client certificate with a subject too long to seal in a ticket
 *    failed its handshake with internal_error.
 * 4. Anyone who saw a session ID could evict the session with one
 *    ClientHello that did not fit it.
 * 5. --tickets could not be turned off on the command line (--no-tickets).
 */
import assert from "node:assert/strict";
import type { ClientAuthPolicy } from "../../src/handshake/server.ts";
import { chainVerifier } from "../../src/pki/chain_verifier.ts";
import { pemBlocks } from "../../src/pki/server_certificate.ts";
import { CIPHER_SUITES, PSK_SUITES, suiteByName } from "../../src/record/suites.ts";
import { resolveSettings } from "../../src/server/config.ts";
import {
  CERT_TIME,
  clientCertificate,
  serverCertificate,
  testCaClientCheck,
  trustingClient,
} from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { Pair, sentAlert } from "../helpers/sim.ts";
import { completed, saved, testResumption } from "../helpers/resumption.ts";

const HOUR = 3_600_000;
const ECDSA = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
type PairOptions = NonNullable<ConstructorParameters<typeof Pair>[0]>;

function run(options: PairOptions): Pair {
  const pair = new Pair({ start: CERT_TIME, ...options });
  pair.run(120_000, true);
  return pair;
}

/** The test CA's client policy under `id` (what a CLI reload computes from the files). */
function testCaPolicy(id: number): ClientAuthPolicy {
  return { check: testCaClientCheck(), required: true, id: new Uint8Array(32).fill(id) };
}

/** A policy trusting another CA only: the test CA was taken out. */
function otherCaPolicy(): ClientAuthPolicy {
  const anchors = pemBlocks(
    Deno.readTextFileSync(`${testPki().dir}/untrusted-ca.pem`),
    "CERTIFICATE",
  );
  return {
    check: chainVerifier({ anchors, purpose: "client" }),
    required: true,
    id: new Uint8Array(32).fill(0xee),
  };
}

function certServer(
  resumption: ReturnType<typeof testResumption>,
  auth: () => ClientAuthPolicy | undefined,
) {
  const pki = testPki();
  return {
    ...serverCertificate(pki.ecCert, pki.ecKey),
    suites: CIPHER_SUITES,
    clientAuth: auth,
    resumption,
  };
}

function certClient(tickets: boolean, cert = testPki().clientCert, key = testPki().clientKey) {
  return {
    ...trustingClient(),
    suites: [suiteByName(ECDSA)],
    ...clientCertificate(cert, key),
    tickets,
  };
}

for (const tickets of [true, false]) {
  const kind = tickets ? "ticket" : "session_id";
  Deno.test(`finding 1: a client certificate's session resumes (by ${kind}) under its own policy only`, () => {
    const resumption = testResumption();
    let auth = testCaPolicy(1);
    const server = () => certServer(resumption, () => auth);
    const first = run({ seed: "1 first", server: server(), client: certClient(tickets) });
    assert.equal(completed(first.serverEvents)?.peerCertificate?.subject, "CN=device-1");
    const session = saved(first);

    // The same policy (another instance, or a reload that changed nothing): resumed.
    auth = testCaPolicy(1);
    const same = run({
      seed: "1 same",
      start: CERT_TIME + 1000,
      server: server(),
      client: { ...certClient(tickets), resume: session },
    });
    const resumed = completed(same.serverEvents);
    assert.equal(resumed?.resumed, kind);
    assert.equal(resumed?.peerCertificate?.subject, "CN=device-1");

    // The test CA taken out: the session needs the certificate again, which is refused.
    auth = otherCaPolicy();
    const after = run({
      seed: "1 after",
      start: CERT_TIME + 2000,
      server: server(),
      client: { ...certClient(tickets), resume: session },
    });
    assert.equal(completed(after.serverEvents), undefined, "not resumed, not authenticated");
    assert.equal(sentAlert(after.serverEvents), "unknown_ca");
  });
}

Deno.test("finding 1: a policy without an id resumes no client certificate's session", () => {
  const resumption = testResumption();
  const auth: ClientAuthPolicy = { check: testCaClientCheck(), required: true };
  const first = run({
    seed: "1 no id",
    server: certServer(resumption, () => auth),
    client: certClient(true),
  });
  const second = run({
    seed: "1 no id again",
    start: CERT_TIME + 1000,
    server: certServer(resumption, () => auth),
    client: { ...certClient(true), resume: saved(first) },
  });
  const done = completed(second.serverEvents);
  assert.equal(done?.resumed, undefined, "a full handshake");
  assert.equal(done?.peerCertificate?.subject, "CN=device-1", "which checks the certificate");
});

Deno.test("finding 1: a client certificate's session does not outlive the certificate", () => {
  const pki = testPki();
  // The chain's end: the earlier of the client certificate's and its CA's notAfter.
  const endOf = (file: string) => {
    const out = new Deno.Command("openssl", {
      args: ["x509", "-in", file, "-noout", "-enddate"],
      stdout: "piped",
    }).outputSync();
    return Date.parse(new TextDecoder().decode(out.stdout).trim().slice("notAfter=".length));
  };
  const notAfter = Math.min(endOf(pki.clientCert), endOf(pki.caCert));
  assert.ok(Number.isFinite(notAfter));
  const resumption = testResumption();
  const auth = testCaPolicy(2);
  // The server's own certificate is checked at the test's start time.
  const verifyAt = (at: number) => ({
    verifyServer: (chain: readonly Uint8Array[]) => trustingClient().verifyServer!(chain, at),
  });
  const first = run({
    seed: "1 expiry",
    start: notAfter - HOUR,
    server: certServer(resumption, () => auth),
    client: { ...certClient(true), ...verifyAt(notAfter - HOUR) },
  });
  assert.equal(completed(first.serverEvents)?.peerCertificate?.subject, "CN=device-1");
  const session = saved(first);
  const before = run({
    seed: "1 before expiry",
    start: notAfter - 1000,
    server: certServer(resumption, () => auth),
    client: { ...certClient(true), ...verifyAt(notAfter - HOUR), resume: session },
  });
  assert.equal(completed(before.serverEvents)?.resumed, "ticket");
  const after = run({
    seed: "1 after expiry",
    start: notAfter + HOUR,
    server: certServer(resumption, () => auth),
    client: { ...certClient(true), ...verifyAt(notAfter - HOUR), resume: session },
  });
  assert.equal(completed(after.serverEvents), undefined);
  assert.equal(sentAlert(after.serverEvents), "certificate_expired");
});

Deno.test("finding 2: a certificate session does not resume where that certificate is not served", () => {
  const shared = testResumption({ cacheSize: 0 });
  const anonymous = { ...trustingClient(), suites: [suiteByName(ECDSA)], tickets: true };
  const a = run({
    seed: "2 a",
    server: certServer(shared, () => undefined),
    client: anonymous,
  });
  assert.equal(completed(a.serverEvents)?.peerCertificate, undefined, "anonymous on A");
  const session = saved(a);
  // B: the same ticket keys, PSK only (no certificate).
  const b = run({
    seed: "2 b",
    start: CERT_TIME + 2000,
    server: { suites: CIPHER_SUITES, resumption: shared },
    client: { ...anonymous, resume: session },
  });
  assert.equal(completed(b.serverEvents), undefined, "no PSK, no certificate: nothing to agree");
  const refused = b.serverEvents.find((e) => e.type === "ticket_refused");
  assert.equal(refused?.type === "ticket_refused" && refused.reason, "mismatch");
  // C: another certificate (the RSA one) with the same ticket keys: a full handshake.
  const pki = testPki();
  const c = run({
    seed: "2 c",
    start: CERT_TIME + 3000,
    server: {
      ...serverCertificate(pki.rsaCert, pki.rsaKey),
      suites: CIPHER_SUITES,
      resumption: shared,
    },
    client: {
      ...anonymous,
      suites: [suiteByName(ECDSA), suiteByName("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")],
      resume: session,
    },
  });
  assert.equal(completed(c.serverEvents)?.resumed, undefined);
  // A again: resumed.
  const again = run({
    seed: "2 a again",
    start: CERT_TIME + 4000,
    server: certServer(shared, () => undefined),
    client: { ...anonymous, resume: session },
  });
  assert.equal(completed(again.serverEvents)?.resumed, "ticket");
});

Deno.test("finding 3: a client certificate too big to seal in a ticket still gets in (with an empty ticket)", () => {
  const pki = testPki();
  const dir = pki.dir;
  const subject = "/CN=device-long" +
    Array.from({ length: 20 }, (_, i) => `/OU=${String(i).padStart(2, "0")}${"x".repeat(60)}`)
      .join("");
  const openssl = (args: string[]) => {
    const out = new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" }).outputSync();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  };
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "long.key"]);
  openssl(["req", "-new", "-key", "long.key", "-subj", subject, "-out", "long.csr"]);
  openssl([
    "x509",
    "-req",
    "-in",
    "long.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "30",
    "-extfile",
    "client.ext",
    "-out",
    "long.pem",
  ]);
  const auth = testCaPolicy(3);
  const pair = run({
    seed: "3",
    server: certServer(testResumption(), () => auth),
    client: certClient(true, `${dir}/long.pem`, `${dir}/long.key`),
  });
  assert.equal(pair.server?.isEstablished, true, `alert ${sentAlert(pair.serverEvents)}`);
  assert.equal(
    pair.clientEvents.find((e) => e.type === "resumable_session"),
    undefined,
    "an empty ticket leaves nothing to resume",
  );
});

Deno.test("finding 4: a ClientHello that does not fit a session leaves it in the cache", () => {
  const resumption = testResumption({ tickets: false });
  const victim = run({ seed: "4 victim", server: { resumption }, client: { tickets: false } });
  const session = saved(victim);
  // Only the session ID, seen in the clear: no master secret, other suites.
  const attacker = run({
    seed: "4 attacker",
    server: { resumption },
    client: {
      tickets: false,
      suites: PSK_SUITES.filter((s) => s.id !== session.suiteId),
      identity: new TextEncoder().encode("attacker"),
      psk: new Uint8Array(6),
      resume: { ...session, masterSecret: new Uint8Array(48) },
    },
  });
  assert.equal(attacker.server?.isEstablished ?? false, false);
  const back = run({
    seed: "4 back",
    start: CERT_TIME + 60_000,
    server: { resumption },
    client: { tickets: false, resume: session },
  });
  assert.equal(completed(back.serverEvents)?.resumed, "session_id");
});

Deno.test("finding 5: --no-tickets turns tickets off on the command line", () => {
  assert.equal(resolveSettings([]).tickets, true);
  assert.equal(resolveSettings(["--no-tickets"]).tickets, false);
  assert.equal(resolveSettings(["--tickets"]).tickets, true);
  assert.equal(resolveSettings(["--no-allow-demo-key"]).allowDemoKey, false);
});
