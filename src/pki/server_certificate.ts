/**
 * The server's certificate from the PEM files an operator gives it
 * (`--cert`, `--key`): the chain to send, leaf first, and the key to sign
 * with, checked before the server starts so that a wrong file stops it with
 * one clear line rather than failing every handshake.
 *
 * X.509 is the runtime's native `node:crypto` `X509Certificate` (see
 * README, "Dependencies"): it parses, checks validity and matches the key;
 * nothing here reads DER beyond taking PEM's base64 off.
 *
 * @module
 */

import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { Buffer } from "node:buffer";
import type { CryptoProvider } from "../crypto/provider.ts";
import type { ServerCertificate } from "../handshake/server.ts";
import { MAX_CHAIN_CERTIFICATES } from "../handshake/messages.ts";
import { MIN_RSA_BITS } from "../crypto/signatures.ts";

/** A certificate or key file that cannot serve: the message says which and why. */
export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CertificateError";
  }
}

/**
 * The DER contents of each `-----BEGIN <label>-----` block of `pem`, in
 * order. Throws a {@link CertificateError} for a block that is not base64.
 */
export function pemBlocks(pem: string, label: string): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  const pattern = new RegExp(`-----BEGIN ${label}-----([^-]*)-----END ${label}-----`, "g");
  for (const match of pem.matchAll(pattern)) {
    const base64 = match[1]!.replace(/\s+/g, "");
    let binary: string;
    try {
      binary = atob(base64);
    } catch {
      throw new CertificateError(`PEM block ${blocks.length + 1} is not base64`);
    }
    blocks.push(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  }
  return blocks;
}

/** What a certificate says of itself, for logs: subject, issuer and validity. */
export interface CertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly validTo: string;
  /** The same, ms since the epoch. */
  readonly notAfter: number;
  /** SHA-256 fingerprint of the leaf, as `AA:BB:…`. */
  readonly fingerprint256: string;
}

/**
 * Reads the server's chain and key: `certPem` holds the chain, leaf first;
 * `keyPem` the leaf's key as PKCS#8, SEC1 (`EC PRIVATE KEY`) or PKCS#1
 * (`RSA PRIVATE KEY`), as openssl writes them. Throws a
 * {@link CertificateError} when a certificate does not parse, the leaf is
 * not valid at `now`, the key is not one we sign with (EC P-256/P-384, RSA
 * of 2048 bits or more) or is not the leaf's.
 */
export function loadServerCertificate(
  certPem: string,
  keyPem: string,
  provider: CryptoProvider,
  now: number,
  names: { readonly cert: string; readonly key: string } = { cert: "--cert", key: "--key" },
): { certificate: ServerCertificate; summary: CertificateSummary } {
  let chain: Uint8Array[];
  try {
    chain = pemBlocks(certPem, "CERTIFICATE");
  } catch (error) {
    throw new CertificateError(`Cannot use ${names.cert}: ${messageOf(error)}`);
  }
  if (chain.length === 0) {
    throw new CertificateError(`Cannot use ${names.cert}: no PEM certificate in it`);
  }
  if (chain.length > MAX_CHAIN_CERTIFICATES) {
    throw new CertificateError(
      `Cannot use ${names.cert}: ${chain.length} certificates, at most ${MAX_CHAIN_CERTIFICATES}`,
    );
  }
  const parsed = chain.map((der, i) => {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch (error) {
      throw new CertificateError(
        `Cannot use ${names.cert}: certificate ${i + 1} does not parse (${messageOf(error)})`,
      );
    }
    // The parser stops at the certificate's end; what follows would go on
    // the wire with it and make every peer refuse the chain.
    const length = outerDerLength(der);
    if (length !== der.length) {
      throw new CertificateError(
        `Cannot use ${names.cert}: certificate ${i + 1} is ${der.length} bytes, its DER ${length}`,
      );
    }
    return cert;
  });
  const leaf = parsed[0]!;
  const from = Date.parse(leaf.validFrom);
  const to = Date.parse(leaf.validTo);
  if (!(now >= from)) {
    throw new CertificateError(
      `Cannot use ${names.cert}: not valid before ${leaf.validFrom} (${leaf.subject})`,
    );
  }
  if (!(now <= to)) {
    throw new CertificateError(
      `Cannot use ${names.cert}: expired ${leaf.validTo} (${leaf.subject})`,
    );
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch (error) {
    throw new CertificateError(
      `Cannot use ${names.key}: not a PEM private key (${messageOf(error)})`,
    );
  }
  let key;
  try {
    const pkcs8 = keyObject.export({ type: "pkcs8", format: "der" });
    key = provider.signingKey(new Uint8Array(pkcs8));
  } catch (error) {
    throw new CertificateError(`Cannot use ${names.key}: ${messageOf(error)}`);
  }
  if (!leaf.checkPrivateKey(keyObject)) {
    throw new CertificateError(
      `Cannot use ${names.key}: it is not the key of the certificate in ${names.cert} (${leaf.subject})`,
    );
  }
  return {
    certificate: {
      chain,
      key,
      spki: new Uint8Array(leaf.publicKey.export({ type: "spki", format: "der" })),
    },
    summary: {
      subject: leaf.subject,
      issuer: leaf.issuer,
      validTo: leaf.validTo,
      notAfter: to,
      fingerprint256: leaf.fingerprint256,
    },
  };
}

/**
 * The public keys of a PEM file (`-----BEGIN PUBLIC KEY-----` blocks, as
 * `openssl pkey -pubout` writes them), for raw public key authentication
 * (RFC 7250): each as its canonical SubjectPublicKeyInfo DER (a compressed
 * EC point is re-encoded as the uncompressed one clients send), and only
 * keys a handshake can be signed with (EC P-256/P-384, RSA of 2048 bits or
 * more): another would let its holder through the key exchange only to fail.
 */
export function loadPublicKeys(pem: string, name: string): Uint8Array[] {
  let blocks: Uint8Array[];
  try {
    blocks = pemBlocks(pem, "PUBLIC KEY");
  } catch (error) {
    throw new CertificateError(`Cannot use ${name}: ${messageOf(error)}`);
  }
  if (blocks.length === 0) {
    throw new CertificateError(`Cannot use ${name}: no PEM public key in it`);
  }
  return blocks.map((der, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
    } catch (error) {
      throw new CertificateError(
        `Cannot use ${name}: public key ${i + 1} does not parse (${messageOf(error)})`,
      );
    }
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    const usable = key.asymmetricKeyType === "ec"
      ? curve === "prime256v1" || curve === "secp384r1" || curve === "P-256" || curve === "P-384"
      : key.asymmetricKeyType === "rsa" && bits >= MIN_RSA_BITS;
    if (!usable) {
      const what = key.asymmetricKeyType === "ec"
        ? `an EC key on ${curve}`
        : key.asymmetricKeyType === "rsa"
        ? `an RSA key of ${bits} bits`
        : `a ${key.asymmetricKeyType} key`;
      throw new CertificateError(
        `Cannot use ${name}: public key ${
          i + 1
        } is ${what} (only EC P-256/P-384 and RSA of ${MIN_RSA_BITS} bits or more sign handshakes)`,
      );
    }
    return new Uint8Array(key.export({ type: "spki", format: "der" }));
  });
}

/**
 * The length of the DER element that starts `der` (tag, length, contents):
 * the one piece of DER read here, to tell a certificate from one with bytes
 * after it. Undefined when the length field itself is cut or not DER.
 */
export function outerDerLength(der: Uint8Array): number | undefined {
  if (der.length < 2) return undefined;
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 4 || der.length < 2 + octets) return undefined;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + der[2 + i]!;
  return 2 + octets + length;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
