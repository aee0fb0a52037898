/**
 * Checks a peer's certificate chain against trust anchors (a client's
 * `--ca` bundle): each certificate signed by the next, issuers marked as
 * CAs, every certificate in its validity period, the chain ending at an
 * anchor, and the leaf naming the server we meant to reach (a DNS name or an
 * IP address in its subjectAltName). Revocation is out of scope.
 *
 * Built on the runtime's `node:crypto` `X509Certificate`; synchronous, so
 * the handshake can call it as a message arrives.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import type { CertificateVerdict } from "../handshake/client.ts";
import { parseIp } from "../codec/ip_address.ts";

/** How far up a presented chain we look for an anchor. */
const MAX_DEPTH = 8;

/** What a chain is checked against. */
export interface ChainPolicy {
  /** The trust anchors, DER (from a PEM bundle: `pemBlocks(text, "CERTIFICATE")`). */
  readonly anchors: readonly Uint8Array[];
  /** The server's name or IP address the leaf must carry; none: not checked. */
  readonly serverName?: string;
}

/** A verifier for `ClientHandshakeOptions.verifyServer`. Throws for an anchor that does not parse. */
export function chainVerifier(
  policy: ChainPolicy,
): (chain: readonly Uint8Array[], now: number) => CertificateVerdict {
  const anchors = policy.anchors.map((der, i) => {
    try {
      return new X509Certificate(der);
    } catch (error) {
      throw new TypeError(`Cannot use trust anchor ${i + 1}: ${(error as Error).message}`);
    }
  });
  return (chain, now) => verifyChain(chain, now, anchors, policy.serverName);
}

function verifyChain(
  chain: readonly Uint8Array[],
  now: number,
  anchors: readonly X509Certificate[],
  serverName: string | undefined,
): CertificateVerdict {
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch (error) {
    return {
      ok: false,
      alert: "bad_certificate",
      reason: `does not parse: ${(error as Error).message}`,
    };
  }
  const leaf = certs[0];
  if (leaf === undefined) return { ok: false, alert: "bad_certificate", reason: "no certificate" };
  for (const cert of certs) {
    const expired = outOfDate(cert, now);
    if (expired !== undefined) return { ok: false, alert: "certificate_expired", reason: expired };
  }
  if (serverName !== undefined) {
    // An IP literal is matched against the IP addresses of the
    // subjectAltName, anything else (localhost included) as a DNS name.
    const named = serverName !== "localhost" && parseIp(serverName) !== undefined
      ? leaf.checkIP(serverName) !== undefined
      : leaf.checkHost(serverName) !== undefined;
    if (!named) {
      return {
        ok: false,
        alert: "bad_certificate",
        reason: `${leaf.subject} is not for ${serverName} (${leaf.subjectAltName ?? "no SAN"})`,
      };
    }
  }
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (anchors.some((a) => a.raw.equals(current.raw))) return trusted(leaf);
    const anchor = anchors.find((a) => issued(current, a));
    if (anchor !== undefined) {
      const expired = outOfDate(anchor, now);
      if (expired !== undefined) {
        return { ok: false, alert: "certificate_expired", reason: expired };
      }
      return trusted(leaf);
    }
    const next = certs.find((c) => c !== current && c.ca && issued(current, c));
    if (next === undefined) break;
    current = next;
  }
  return {
    ok: false,
    alert: "unknown_ca",
    reason: `no trusted issuer for ${current.subject} (issuer ${current.issuer})`,
  };
}

/** Whether `issuer` is a CA that signed `cert`. */
function issued(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return issuer.ca && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function outOfDate(cert: X509Certificate, now: number): string | undefined {
  if (!(now >= Date.parse(cert.validFrom))) {
    return `${cert.subject} not valid before ${cert.validFrom}`;
  }
  if (!(now <= Date.parse(cert.validTo))) return `${cert.subject} expired ${cert.validTo}`;
  return undefined;
}

function trusted(leaf: X509Certificate): CertificateVerdict {
  return {
    ok: true,
    spki: new Uint8Array(leaf.publicKey.export({ type: "spki", format: "der" })),
    subject: leaf.subject,
  };
}
