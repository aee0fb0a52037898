/**
 * A resumable session: DTLS 1.2's (RFC 5246 §7.3), what an abbreviated
 * handshake needs to pick up where a full one left off, or DTLS 1.3's
 * (RFC 8446 §4.6.1), the PSK a NewSessionTicket stands for; and its byte
 * encoding, which a ticket carries sealed (RFC 5077 §4) and nothing else
 * reads.
 *
 * @module
 */

import { Reader } from "../codec/reader.ts";
import { Writer } from "../codec/writer.ts";
import { fromHex, toHex } from "../codec/hex.ts";

/** What a completed full handshake leaves to resume from. */
export interface Session {
  /** When the full handshake completed, ms since the epoch: the lifetime counts from here. */
  readonly issuedAt: number;
  /** The cipher suite's code point: a resumption keeps it. */
  readonly suiteId: number;
  /**
   * DTLS 1.2: the 48-byte master secret. DTLS 1.3: the resumption PSK, as
   * long as the suite's hash (32 or 48 bytes).
   */
  readonly masterSecret: Uint8Array;
  /** A DTLS 1.3 session (a resumption PSK), resumed only by a 1.3 handshake. */
  readonly dtls13?: boolean;
  /** Whether the master secret was extended (RFC 7627); only such sessions are resumed. */
  readonly extendedMasterSecret: boolean;
  /** Whether encrypt_then_mac was in use (RFC 7366; CBC suites only). */
  readonly encryptThenMac: boolean;
  /** The PSK identity exactly as sent; empty on the certificate suites. */
  readonly identityBytes: Uint8Array;
  /**
   * A check value of the PSK the session was made with (see
   * `pskCheck` in resumption.ts), so that a key replaced in the key file
   * ends its sessions; empty on the certificate suites.
   */
  readonly pskCheck: Uint8Array;
  /**
   * SHA-256 of the server's certificate key (SubjectPublicKeyInfo) on the
   * certificate suites, empty on the PSK suites: a session resumes only
   * where that certificate is still served.
   */
  readonly serverSpkiSha256: Uint8Array;
  /** The client's certificate, when one authenticated it. */
  readonly peerCertificate?: {
    readonly subject: string;
    /** SHA-256 of its SubjectPublicKeyInfo, lowercase hex. */
    readonly spkiSha256: string;
    /** When its chain stops being valid, ms since the epoch; 0 for a raw public key. */
    readonly notAfter: number;
    /**
     * What identifies the client authentication policy that accepted it
     * (`ClientAuthPolicy.id`): under another one the session is not resumed.
     */
    readonly policyId: Uint8Array;
  };
}

/**
 * The encoding's version: a ticket of another version is refused, never
 * misread. A 1.2 session is written in format 1 (as before 1.3 existed);
 * a 1.3 session in format 2, whose secret carries its length.
 */
const SESSION_FORMAT = 1;
const SESSION_FORMAT_13 = 2;
const MASTER_SECRET_LENGTH = 48;
/** Longest subject a session carries, bytes of UTF-8: a longer one is not made resumable. */
export const MAX_SESSION_SUBJECT = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The bytes of a session. Throws RangeError for one that cannot be encoded. */
export function encodeSession(session: Session): Uint8Array {
  const dtls13 = session.dtls13 === true;
  if (
    dtls13
      ? session.masterSecret.length !== 32 && session.masterSecret.length !== 48
      : session.masterSecret.length !== MASTER_SECRET_LENGTH
  ) {
    throw new RangeError("Cannot encode a session: its secret has the wrong length");
  }
  const subject = encoder.encode(session.peerCertificate?.subject ?? "");
  const notAfter = session.peerCertificate?.notAfter ?? 0;
  if (!(Number.isInteger(notAfter) && notAfter >= 0 && notAfter < 2 ** 48)) {
    throw new RangeError("Cannot encode a session: certificate notAfter out of range");
  }
  if (subject.length > MAX_SESSION_SUBJECT) {
    throw new RangeError("Cannot encode a session: certificate subject too long");
  }
  const spki = session.peerCertificate === undefined
    ? new Uint8Array(0)
    : fromHex(session.peerCertificate.spkiSha256);
  if (spki === undefined || (session.peerCertificate !== undefined && spki.length !== 32)) {
    throw new RangeError("Cannot encode a session: spkiSha256 is not 64 hex digits");
  }
  const w = new Writer(128 + session.identityBytes.length + subject.length);
  const issuedAt = Math.trunc(session.issuedAt);
  w.u8(dtls13 ? SESSION_FORMAT_13 : SESSION_FORMAT)
    .u48(issuedAt)
    .u16(session.suiteId)
    .u8((session.extendedMasterSecret ? 1 : 0) | (session.encryptThenMac ? 2 : 0));
  if (dtls13) w.opaque8(session.masterSecret);
  else w.bytes(session.masterSecret);
  w
    .opaque16(session.identityBytes)
    .opaque8(session.pskCheck)
    .opaque8(session.serverSpkiSha256)
    .u8(session.peerCertificate === undefined ? 0 : 1)
    .opaque16(subject)
    .opaque8(spki)
    .u48(session.peerCertificate?.notAfter ?? 0)
    .opaque8(session.peerCertificate?.policyId ?? new Uint8Array(0));
  return w.finish();
}

/** The session in `bytes`, or undefined when they are not one this code wrote. */
export function decodeSession(bytes: Uint8Array): Session | undefined {
  try {
    const r = new Reader(bytes);
    const format = r.u8("session format");
    if (format !== SESSION_FORMAT && format !== SESSION_FORMAT_13) return undefined;
    const dtls13 = format === SESSION_FORMAT_13;
    const issuedAt = r.u48("session issued_at");
    const suiteId = r.u16("session suite");
    const flags = r.u8("session flags");
    if ((flags & ~3) !== 0) return undefined;
    const masterSecret = dtls13
      ? r.opaque8("session resumption psk").slice()
      : r.bytes(MASTER_SECRET_LENGTH, "session master secret").slice();
    if (dtls13 && masterSecret.length !== 32 && masterSecret.length !== 48) return undefined;
    const identityBytes = r.opaque16("session identity").slice();
    const pskCheck = r.opaque8("session psk check").slice();
    const serverSpkiSha256 = r.opaque8("session server spki hash").slice();
    const hasCertificate = r.u8("session certificate flag");
    const subject = r.opaque16("session subject");
    const spki = r.opaque8("session spki hash");
    const notAfter = r.u48("session certificate notAfter");
    const policyId = r.opaque8("session client auth policy").slice();
    r.end("session");
    if (hasCertificate > 1 || subject.length > MAX_SESSION_SUBJECT) return undefined;
    if (
      hasCertificate === 0 &&
      (subject.length !== 0 || spki.length !== 0 || notAfter !== 0 || policyId.length !== 0)
    ) {
      return undefined;
    }
    if (hasCertificate === 1 && spki.length !== 32) return undefined;
    if (serverSpkiSha256.length !== 0 && serverSpkiSha256.length !== 32) return undefined;
    return {
      issuedAt,
      suiteId,
      masterSecret,
      ...(dtls13 ? { dtls13 } : {}),
      extendedMasterSecret: (flags & 1) !== 0,
      encryptThenMac: (flags & 2) !== 0,
      identityBytes,
      pskCheck,
      serverSpkiSha256,
      ...(hasCertificate === 1
        ? {
          peerCertificate: {
            subject: decoder.decode(subject),
            spkiSha256: toHex(spki),
            notAfter,
            policyId,
          },
        }
        : {}),
    };
  } catch {
    return undefined;
  }
}
