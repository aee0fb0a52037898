/**
 * Checks a peer's certificate chain against trust anchors (a client's
 * `--ca` bundle): each certificate signed by the next, issuers marked as
 * CAs, every certificate in its validity period, the chain ending at an
 * anchor, and the leaf naming the server we meant to reach (a DNS name or an
 * IP address in its subjectAltName). Revocation is out of scope.
 *
 * Built on the runtime's `node:crypto` `X509Certificate` (signatures, names,
 * dates), which does not expose the key usage extensions; those are read
 * with `@peculiar/x509`. Synchronous, so the handshake can call it as a
 * message arrives.
 *
 * @module
 */

import { X509Certificate } from "node:crypto";
import {
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  X509Certificate as ParsedCertificate,
} from "@peculiar/x509";
import type { CertificateVerdict } from "../handshake/client.ts";
import { parseIp } from "../codec/ip_address.ts";

/** How far up a presented chain we look for an anchor. */
const MAX_DEPTH = 8;

/** Signatures checked for one chain at most: a few per level of an honest one. */
const MAX_SIGNATURE_CHECKS = 16;

/** What a chain is checked against. */
export interface ChainPolicy {
  /** The trust anchors, DER (from a PEM bundle: `pemBlocks(text, "CERTIFICATE")`). */
  readonly anchors: readonly Uint8Array[];
  /** The server's name or IP address the leaf must carry; none: not checked. */
  readonly serverName?: string;
  /**
   * What the leaf must be for (its extendedKeyUsage, when it has one):
   * a server's certificate or a client's. Default: a server's.
   */
  readonly purpose?: "server" | "client";
}

/** extendedKeyUsage OIDs (RFC 5280 §4.2.1.12). */
const PURPOSE_OID = { server: "1.3.6.1.5.5.7.3.1", client: "1.3.6.1.5.5.7.3.2" } as const;
const ANY_EXTENDED_KEY_USAGE = "2.5.29.37.0";

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
  return (chain, now) =>
    verifyChain(chain, now, anchors, policy.serverName, policy.purpose ?? "server");
}

function verifyChain(
  chain: readonly Uint8Array[],
  now: number,
  anchors: readonly X509Certificate[],
  serverName: string | undefined,
  purpose: "server" | "client",
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
  // The path is walked once, each certificate at most once, and the
  // signature checks are counted: a chain a peer builds (issuers that sign
  // each other, decoys with the right names) costs a bounded amount of work.
  const budget = { checks: MAX_SIGNATURE_CHECKS };
  const onPath = new Set<X509Certificate>([leaf]);
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH && budget.checks > 0; depth++) {
    if (anchors.some((a) => a.raw.equals(current.raw))) {
      return trusted(leaf, chain[0]!, purpose, onPath);
    }
    const anchor = anchors.find((a) => issued(current, a, budget));
    if (anchor !== undefined) {
      const expired = outOfDate(anchor, now);
      if (expired !== undefined) {
        return { ok: false, alert: "certificate_expired", reason: expired };
      }
      return trusted(leaf, chain[0]!, purpose, [...onPath, anchor]);
    }
    const next = certs.find((c) => !onPath.has(c) && c.ca && issued(current, c, budget));
    if (next === undefined) break;
    if (!mayIssue(chain[certs.indexOf(next)]!)) {
      return {
        ok: false,
        alert: "bad_certificate",
        reason: `${next.subject} may not sign certificates (keyUsage)`,
      };
    }
    onPath.add(next);
    current = next;
  }
  return {
    ok: false,
    alert: "unknown_ca",
    reason: `no trusted issuer for ${current.subject} (issuer ${current.issuer})`,
  };
}

/**
 * What is wrong with a leaf for `purpose`, or undefined: a CA certificate
 * is no leaf; an extendedKeyUsage must name the purpose (or any); a
 * keyUsage must allow signatures (RFC 5280 §4.2.1.3, §4.2.1.9, §4.2.1.12).
 */
function usageProblem(der: Uint8Array, purpose: "server" | "client"): string | undefined {
  let parsed: ParsedCertificate;
  try {
    parsed = new ParsedCertificate(der.slice());
  } catch {
    return "has extensions that do not parse";
  }
  if (parsed.getExtension(BasicConstraintsExtension)?.ca === true) {
    return "is a CA certificate, not one for an end entity";
  }
  const eku = parsed.getExtension(ExtendedKeyUsageExtension);
  if (
    eku !== null &&
    !eku.usages.some((u) => u === PURPOSE_OID[purpose] || u === ANY_EXTENDED_KEY_USAGE)
  ) {
    return `is not for a ${purpose} (extendedKeyUsage)`;
  }
  const ku = parsed.getExtension(KeyUsagesExtension);
  if (ku !== null && (ku.usages & KeyUsageFlags.digitalSignature) === 0) {
    return "may not sign (keyUsage)";
  }
  return undefined;
}

/** Whether an intermediate's keyUsage, if it has one, lets it sign certificates. */
function mayIssue(der: Uint8Array): boolean {
  try {
    const ku = new ParsedCertificate(der.slice()).getExtension(KeyUsagesExtension);
    return ku === null || (ku.usages & KeyUsageFlags.keyCertSign) !== 0;
  } catch {
    return false;
  }
}

/**
 * Whether `issuer` is a CA that signed `cert`: names first (cheap), then the
 * signature, which spends one of the budget's checks.
 */
function issued(
  cert: X509Certificate,
  issuer: X509Certificate,
  budget: { checks: number },
): boolean {
  try {
    if (!issuer.ca || !cert.checkIssued(issuer) || budget.checks <= 0) return false;
    budget.checks--;
    return cert.verify(issuer.publicKey);
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

/**
 * The verdict on a leaf whose chain is trusted: what it may be used for
 * decides. `path`: the certificates from the leaf to the anchor, whose
 * earliest notAfter is when the chain stops being valid.
 */
function trusted(
  leaf: X509Certificate,
  der: Uint8Array,
  purpose: "server" | "client",
  path: Iterable<X509Certificate>,
): CertificateVerdict {
  const misused = usageProblem(der, purpose);
  if (misused !== undefined) {
    return { ok: false, alert: "unsupported_certificate", reason: `${leaf.subject} ${misused}` };
  }
  return {
    ok: true,
    spki: new Uint8Array(leaf.publicKey.export({ type: "spki", format: "der" })),
    subject: leaf.subject,
    notAfter: Math.min(...Array.from(path, (c) => Date.parse(c.validTo))),
  };
}
