/**
 * Codecs for the hello extensions a DTLS 1.2 PSK server looks at, and checks
 * on the extension list as a whole.
 *
 * A hello's extensions arrive as raw {@link Extension}s (see `messages.ts`);
 * the server decodes only those it acts on, so an unknown extension is never a
 * decode error. Decoders throw only {@link DecodeError}.
 *
 * @module
 */

import type { GroupName, SignatureScheme } from "../crypto/provider.ts";
import { DecodeError, Reader } from "../codec/reader.ts";
import { Writer } from "../codec/writer.ts";
import type { Extension } from "./messages.ts";

/** ExtensionType code points we understand (IANA TLS ExtensionType Values). */
export const ExtensionType = {
  /** RFC 6066 §3. */
  ServerName: 0,
  /** RFC 8422 §5.1.1 (formerly elliptic_curves). */
  SupportedGroups: 10,
  /** RFC 8422 §5.1.2. */
  EcPointFormats: 11,
  /** RFC 5246 §7.4.1.4.1. */
  SignatureAlgorithms: 13,
  /** RFC 7250 §4.1. */
  ClientCertificateType: 19,
  /** RFC 7250 §4.1. */
  ServerCertificateType: 20,
  /** RFC 7366 §2. */
  EncryptThenMac: 22,
  /** RFC 7627 §5.1. */
  ExtendedMasterSecret: 23,
  /** RFC 5077 §3.2: empty to ask for a ticket, or the ticket to resume. */
  SessionTicket: 35,
  /** RFC 9146 §3: the Connection ID the sender wants to receive. */
  ConnectionId: 54,
  /** RFC 5746 §3.2. */
  RenegotiationInfo: 0xff01,
} as const;

/** NamedGroup code points for the ECDHE groups we implement (RFC 8422 §5.1.1). */
export const NamedGroup = { x25519: 29, secp256r1: 23, secp384r1: 24 } as const satisfies Record<
  GroupName,
  number
>;

/**
 * The TLS 1.2 SignatureAndHashAlgorithm of each scheme we sign or verify
 * with: hash in the high byte, signature in the low (RFC 5246 §7.4.1.4.1);
 * RSA-PSS has the code points of RFC 8446 §4.2.3, which TLS 1.2 uses too.
 */
export const SignatureSchemeCode = {
  ecdsa_secp256r1_sha256: 0x0403,
  ecdsa_secp384r1_sha384: 0x0503,
  rsa_pss_rsae_sha256: 0x0804,
  rsa_pss_rsae_sha384: 0x0805,
  rsa_pkcs1_sha256: 0x0401,
  rsa_pkcs1_sha384: 0x0501,
} as const satisfies Record<SignatureScheme, number>;

/** The scheme of a code point, if we implement it. */
export function signatureSchemeOf(code: number): SignatureScheme | undefined {
  for (const [scheme, c] of Object.entries(SignatureSchemeCode)) {
    if (c === code) return scheme as SignatureScheme;
  }
  return undefined;
}

/**
 * Decodes signature_algorithms: `SignatureAndHashAlgorithm
 * supported_signature_algorithms<2..2^16-2>` (RFC 5246 §7.4.1.4.1). Unknown
 * pairs are kept, in the peer's order, for the caller to skip.
 */
export function decodeSignatureAlgorithms(data: Uint8Array): number[] {
  const r = new Reader(data);
  const list = r.vec16("signature_algorithms");
  r.end("signature_algorithms");
  if (list.remaining === 0) throw new DecodeError("signature_algorithms", "empty");
  if (list.remaining % 2 !== 0) throw new DecodeError("signature_algorithms", "odd length");
  const codes: number[] = [];
  while (list.remaining > 0) codes.push(list.u16("signature_algorithms"));
  return codes;
}

/** Encodes signature_algorithms (RFC 5246 §7.4.1.4.1); the list must not be empty. */
export function encodeSignatureAlgorithms(codes: readonly number[]): Uint8Array {
  if (codes.length === 0) throw new RangeError("Cannot encode signature_algorithms: empty");
  return new Writer(2 + 2 * codes.length)
    .vec16((w) => {
      for (const c of codes) w.u16(c);
    })
    .finish();
}

/** CertificateType values (RFC 7250 §3): an X.509 chain, or a bare SubjectPublicKeyInfo. */
export const CertificateType = { X509: 0, RawPublicKey: 2 } as const;

/**
 * Decodes a client's client_certificate_type or server_certificate_type:
 * `CertificateType types<1..2^8-1>`, in its order of preference (RFC 7250 §4.1).
 */
export function decodeCertificateTypes(data: Uint8Array): number[] {
  const r = new Reader(data);
  const list = r.vec8("certificate_type");
  r.end("certificate_type");
  if (list.remaining === 0) throw new DecodeError("certificate_type", "empty");
  const types: number[] = [];
  while (list.remaining > 0) types.push(list.u8("CertificateType"));
  return types;
}

/** Encodes a client's certificate type list (RFC 7250 §4.1). */
export function encodeCertificateTypes(types: readonly number[]): Uint8Array {
  if (types.length === 0) throw new RangeError("Cannot encode certificate_type: empty");
  return new Writer(1 + types.length)
    .vec8((w) => {
      for (const t of types) w.u8(t);
    })
    .finish();
}

/** Decodes a server's choice: one CertificateType (RFC 7250 §4.2). */
export function decodeCertificateTypeChoice(data: Uint8Array): number {
  const r = new Reader(data);
  const type = r.u8("certificate_type");
  r.end("certificate_type");
  return type;
}

/** ECPointFormat.uncompressed, the one format RFC 8422 §5.1.2 still requires. */
export const EC_POINT_FORMAT_UNCOMPRESSED = 0;

/**
 * The signalling cipher suite value a client may offer instead of an empty
 * renegotiation_info extension (RFC 5746 §3.3).
 */
export const TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00ff;

/** The first extension of this type, if any. */
export function findExtension(exts: readonly Extension[], type: number): Extension | undefined {
  return exts.find((e) => e.type === type);
}

/**
 * Whether two extensions share a type. RFC 5246 §7.4.1.4: "There MUST NOT be
 * more than one extension of the same type." A hello that breaks this is
 * rejected by the caller, since `findExtension` would otherwise silently pick
 * one of the copies.
 */
export function hasDuplicateExtensions(exts: readonly Extension[]): boolean {
  const seen = new Set<number>();
  for (const e of exts) {
    if (seen.has(e.type)) return true;
    seen.add(e.type);
  }
  return false;
}

/**
 * Whether an extension has empty extension_data, as extended_master_secret
 * (RFC 7627 §5.1) and encrypt_then_mac (RFC 7366 §2) require.
 */
export function isEmptyExtension(ext: Extension): boolean {
  return ext.data.length === 0;
}

/**
 * Decodes supported_groups: `NamedGroup named_group_list<2..2^16-1>`
 * (RFC 8422 §5.1.1). Unknown groups are kept so the caller can skip them.
 */
export function decodeSupportedGroups(data: Uint8Array): number[] {
  const r = new Reader(data);
  const list = r.vec16("supported_groups");
  r.end("supported_groups");
  if (list.remaining === 0) throw new DecodeError("supported_groups", "empty");
  if (list.remaining % 2 !== 0) throw new DecodeError("supported_groups", "odd length");
  const groups: number[] = [];
  while (list.remaining > 0) groups.push(list.u16("supported_groups"));
  return groups;
}

/** Encodes supported_groups (RFC 8422 §5.1.1); the list must not be empty. */
export function encodeSupportedGroups(groups: readonly number[]): Uint8Array {
  if (groups.length === 0) throw new RangeError("Cannot encode supported_groups: empty");
  return new Writer(2 + 2 * groups.length)
    .vec16((w) => {
      for (const g of groups) w.u16(g);
    })
    .finish();
}

/** Decodes ec_point_formats: `ECPointFormat ec_point_format_list<1..2^8-1>` (RFC 8422 §5.1.2). */
export function decodeEcPointFormats(data: Uint8Array): number[] {
  const r = new Reader(data);
  const list = r.opaque8("ec_point_formats");
  r.end("ec_point_formats");
  if (list.length === 0) throw new DecodeError("ec_point_formats", "empty");
  return Array.from(list);
}

/** Encodes ec_point_formats (RFC 8422 §5.1.2); the list must not be empty. */
export function encodeEcPointFormats(formats: readonly number[]): Uint8Array {
  if (formats.length === 0) throw new RangeError("Cannot encode ec_point_formats: empty");
  return new Writer(1 + formats.length)
    .vec8((w) => {
      for (const f of formats) w.u8(f);
    })
    .finish();
}

/**
 * Decodes renegotiation_info and returns `renegotiated_connection<0..255>`
 * (RFC 5746 §3.2), which is empty on an initial handshake.
 */
export function decodeRenegotiationInfo(data: Uint8Array): Uint8Array {
  const r = new Reader(data);
  const v = r.opaque8("renegotiation_info.renegotiated_connection");
  r.end("renegotiation_info");
  return v;
}

/** Encodes renegotiation_info (RFC 5746 §3.2); pass an empty array on an initial handshake. */
export function encodeRenegotiationInfo(v: Uint8Array): Uint8Array {
  return new Writer(1 + v.length).opaque8(v).finish();
}

/** Decodes connection_id (RFC 9146 §3): `opaque cid<0..2^8-1>`, the CID its sender wants to receive. */
export function decodeConnectionId(data: Uint8Array): Uint8Array {
  const r = new Reader(data);
  const cid = r.opaque8("connection_id.cid");
  r.end("connection_id");
  return cid;
}

/** Encodes connection_id (RFC 9146 §3). */
export function encodeConnectionId(cid: Uint8Array): Uint8Array {
  return new Writer(1 + cid.length).opaque8(cid).finish();
}

/**
 * The longest Connection ID we give out or take, bytes (Mbed TLS accepts up
 * to 32 by default; the wire allows 255, which would leave little of a
 * small MTU).
 */
export const MAX_CID_LENGTH = 32;
