/**
 * The client's check of a server chain (src/pki/chain_verifier.ts) against
 * the test PKI: what it trusts, and the alert each refusal carries.
 */
import assert from "node:assert/strict";
import { chainVerifier } from "../../src/pki/chain_verifier.ts";
import { pemBlocks } from "../../src/pki/server_certificate.ts";
import { CERT_TIME } from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { skipUnless } from "../helpers/server_process.ts";

const openssl = skipUnless("openssl");
const der = (file: string) => pemBlocks(Deno.readTextFileSync(file), "CERTIFICATE");

function verdict(
  chainFile: string,
  options: { serverName?: string; now?: number; anchors?: string } = {},
) {
  const pki = testPki();
  const verify = chainVerifier({
    anchors: der(options.anchors ?? pki.caCert),
    ...(options.serverName === undefined ? {} : { serverName: options.serverName }),
  });
  return verify(der(chainFile), options.now ?? CERT_TIME);
}

Deno.test({
  name: "chain: a leaf signed by the anchor, or through an intermediate it sends, is trusted",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const direct = verdict(pki.ecCert, { serverName: "localhost" });
    assert.equal(direct.ok, true);
    assert.equal(direct.ok && direct.subject, "CN=localhost");
    assert.equal(verdict(pki.chainedBundle, { serverName: "localhost" }).ok, true);
    // Without the intermediate the chain has a gap.
    const gap = verdict(pki.chainedCert);
    assert.equal(!gap.ok && gap.alert, "unknown_ca");
  },
});

Deno.test({
  name:
    "chain: the refusals carry the RFC's alerts: unknown_ca, certificate_expired, bad_certificate",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const untrusted = verdict(pki.untrustedCert);
    assert.equal(!untrusted.ok && untrusted.alert, "unknown_ca");
    const expired = verdict(pki.expiredCert, { anchors: pki.expiredCert });
    assert.equal(!expired.ok && expired.alert, "certificate_expired");
    const early = verdict(pki.ecCert, { now: CERT_TIME - 10 * 86_400_000 });
    assert.equal(!early.ok && early.alert, "certificate_expired");
    const late = verdict(pki.ecCert, { now: CERT_TIME + 60 * 86_400_000 });
    assert.equal(!late.ok && late.alert, "certificate_expired");
    const otherName = verdict(pki.ecCert, { serverName: "example.org" });
    assert.equal(!otherName.ok && otherName.alert, "bad_certificate");
    const garbage = chainVerifier({ anchors: der(pki.caCert) })([
      new Uint8Array([0x30, 3, 1, 2, 3]),
    ], CERT_TIME);
    assert.equal(!garbage.ok && garbage.alert, "bad_certificate");
    // A leaf is no issuer: a chain "signed" by a non-CA certificate is not trusted.
    const leafAsAnchor = verdict(pki.chainedCert, { anchors: pki.ecCert });
    assert.equal(!leafAsAnchor.ok && leafAsAnchor.alert, "unknown_ca");
  },
});

Deno.test({
  name: "chain: a certificate given as an anchor is trusted as itself (pinning)",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    assert.equal(verdict(pki.untrustedCert, { anchors: pki.untrustedCert }).ok, true);
  },
});
