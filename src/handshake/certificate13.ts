/**
 * A peer's authentication in a DTLS 1.3 handshake, the same for either
 * side (RFC 8446 §4.4.2, §4.4.3): its Certificate message read into a
 * chain, and its CertificateVerify checked against the chain's key under
 * the context string of the side that signed.
 *
 * @module
 */

import { DecodeError } from "../codec/reader.ts";
import { VERIFY_SCHEMES_13, verifySignature13 } from "../crypto/signatures.ts";
import { ProtocolError } from "./errors.ts";
import { signatureSchemeOf } from "./extensions.ts";
import { AlertDescription, decodeCertificateVerify, MAX_CHAIN_CERTIFICATES } from "./messages.ts";
import { decodeCertificate13, signatureContent } from "./messages13.ts";

/** The DER certificates of a peer's Certificate (views of `body`); decode_error for what does not parse. */
export function readCertificate13(body: Uint8Array, who: "client" | "server"): Uint8Array[] {
  try {
    return decodeCertificate13(body, MAX_CHAIN_CERTIFICATES);
  } catch (error) {
    if (error instanceof DecodeError) {
      throw new ProtocolError(
        AlertDescription.DecodeError,
        `Cannot decode ${who} Certificate: ${error.message}`,
      );
    }
    throw error;
  }
}

/**
 * Checks the CertificateVerify `body` that `signer` sent over
 * `transcriptHash` (everything up to its Certificate), with the key `spki`:
 * decode_error for what does not parse, illegal_parameter for a scheme we
 * do not take, decrypt_error for a signature that does not verify (both
 * providers verify natively, in `src/crypto/signatures.ts`).
 */
export function checkCertificateVerify13(
  body: Uint8Array,
  signer: "client" | "server",
  spki: Uint8Array,
  transcriptHash: Uint8Array,
): void {
  let verify;
  try {
    verify = decodeCertificateVerify(body);
  } catch (error) {
    if (error instanceof DecodeError) {
      throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode CertificateVerify");
    }
    throw error;
  }
  const scheme = signatureSchemeOf(verify.scheme);
  if (scheme === undefined || !VERIFY_SCHEMES_13.includes(scheme)) {
    throw new ProtocolError(
      AlertDescription.IllegalParameter,
      `${signer} CertificateVerify with a scheme we do not take`,
    );
  }
  const content = signatureContent(signer, transcriptHash);
  if (!verifySignature13(spki, scheme, content, verify.signature)) {
    throw new ProtocolError(
      AlertDescription.DecryptError,
      `${signer} CertificateVerify does not verify`,
    );
  }
}
