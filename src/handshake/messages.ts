/**
 * Wire codecs for the bodies of the DTLS 1.2 handshake messages a PSK server
 * sends and receives (RFC 6347 §4.2, RFC 5246 §7.4, RFC 4279 §2, RFC 5489 §2,
 * RFC 8422 §5), and for alerts (RFC 5246 §7.2).
 *
 * A body is what follows the 12-byte DTLS handshake header; framing,
 * fragmentation and reassembly live in `fragments.ts`. Decoders throw only
 * {@link DecodeError} and return subarrays of their input, so a caller that
 * keeps a value past the datagram's lifetime must copy it. Values the codec
 * does not understand (cipher suites, extensions, groups) are kept as numbers
 * or raw bytes: choosing among them is policy, not decoding.
 *
 * @module
 */

import { DecodeError, Reader } from "../codec/reader.ts";
import { Writer } from "../codec/writer.ts";

/** Handshake message types used by DTLS 1.2 PSK (RFC 5246 §7.4, RFC 6347 §4.3.2). */
export const HandshakeType = {
  HelloRequest: 0,
  ClientHello: 1,
  ServerHello: 2,
  HelloVerifyRequest: 3,
  /** RFC 5077 §3.3. */
  NewSessionTicket: 4,
  Certificate: 11,
  ServerKeyExchange: 12,
  CertificateRequest: 13,
  ServerHelloDone: 14,
  CertificateVerify: 15,
  ClientKeyExchange: 16,
  Finished: 20,
} as const;

/** One hello extension, its body kept raw (RFC 5246 §7.4.1.4). */
export interface Extension {
  /** ExtensionType code point. */
  type: number;
  /** extension_data, undecoded. */
  data: Uint8Array;
}

/** A DTLS ClientHello (RFC 6347 §4.2.1, which adds `cookie` to RFC 5246 §7.4.1.2). */
export interface ClientHello {
  /** client_version, e.g. 0xfefd for DTLS 1.2. */
  clientVersion: number;
  /** 32 bytes of client random. */
  random: Uint8Array;
  /** session_id, 0..32 bytes. */
  sessionId: Uint8Array;
  /** The cookie echoed from a HelloVerifyRequest, 0..255 bytes. */
  cookie: Uint8Array;
  /** Offered cipher suites in client preference order, unknown ones included. */
  cipherSuites: number[];
  /** Offered compression methods (at least one). */
  compressionMethods: Uint8Array;
  /** Extensions in wire order; `[]` when the block is absent. */
  extensions: Extension[];
}

/** A HelloVerifyRequest (RFC 6347 §4.2.1). */
export interface HelloVerifyRequest {
  /** server_version; RFC 6347 §4.2.1 says DTLS 1.2 servers SHOULD send 0xfeff (DTLS 1.0). */
  serverVersion: number;
  /** The stateless cookie, 0..255 bytes. */
  cookie: Uint8Array;
}

/** A ServerHello (RFC 5246 §7.4.1.3). */
export interface ServerHello {
  /** server_version, 0xfefd for DTLS 1.2. */
  serverVersion: number;
  /** 32 bytes of server random. */
  random: Uint8Array;
  /** session_id, 0..32 bytes. */
  sessionId: Uint8Array;
  /** The chosen cipher suite. */
  cipherSuite: number;
  /** The chosen compression method (0 = null). */
  compressionMethod: number;
  /** Extensions in wire order; the block is omitted on the wire when empty. */
  extensions: Extension[];
}

/** Length of `Random` (RFC 5246 §7.4.1.2). */
const RANDOM_LENGTH = 32;
/** `SessionID session_id<0..32>` (RFC 5246 §7.4.1.2). */
const MAX_SESSION_ID_LENGTH = 32;
/** verify_data_length for every TLS 1.2 PRF-based suite we run (RFC 5246 §7.4.9). */
const VERIFY_DATA_LENGTH = 12;
/** ECCurveType.named_curve (RFC 8422 §5.4); the only curve type RFC 8422 still allows. */
const NAMED_CURVE = 3;

/** Rejects an encoder argument the wire format cannot carry: a caller bug, not a peer's. */
function need(ok: boolean, what: string, reason: string): void {
  if (!ok) throw new RangeError(`Cannot encode ${what}: ${reason}`);
}

function readRandom(r: Reader, what: string): Uint8Array {
  return r.bytes(RANDOM_LENGTH, what);
}

function readSessionId(r: Reader, what: string): Uint8Array {
  const id = r.opaque8(what);
  if (id.length > MAX_SESSION_ID_LENGTH) throw new DecodeError(what, "longer than 32 bytes");
  return id;
}

/**
 * The optional trailing extensions block of a hello. RFC 5246 §7.4.1.2: "the
 * presence of extensions can be detected by determining whether there are
 * bytes following the compression_methods", so no bytes means no extensions.
 */
function readExtensions(r: Reader, what: string): Extension[] {
  const extensions: Extension[] = [];
  if (r.remaining === 0) return extensions;
  const list = r.vec16(what);
  while (list.remaining > 0) {
    const type = list.u16(`${what}.extension_type`);
    const data = list.opaque16(`${what}.extension_data`);
    extensions.push({ type, data });
  }
  return extensions;
}

function writeExtensions(w: Writer, extensions: readonly Extension[]): void {
  w.vec16((list) => {
    for (const e of extensions) list.u16(e.type).opaque16(e.data);
  });
}

/** Decodes a ClientHello body (RFC 6347 §4.2.1). */
export function decodeClientHello(body: Uint8Array): ClientHello {
  const r = new Reader(body);
  const clientVersion = r.u16("ClientHello.client_version");
  const random = readRandom(r, "ClientHello.random");
  const sessionId = readSessionId(r, "ClientHello.session_id");
  // RFC 6347 §4.2.1 widens the cookie to opaque cookie<0..2^8-1>.
  const cookie = r.opaque8("ClientHello.cookie");
  // CipherSuite cipher_suites<2..2^16-2>: whole 2-byte code points, at least one.
  const suites = r.vec16("ClientHello.cipher_suites");
  if (suites.remaining === 0) throw new DecodeError("ClientHello.cipher_suites", "empty");
  if (suites.remaining % 2 !== 0) throw new DecodeError("ClientHello.cipher_suites", "odd length");
  const cipherSuites: number[] = [];
  while (suites.remaining > 0) cipherSuites.push(suites.u16("ClientHello.cipher_suites"));
  // CompressionMethod compression_methods<1..2^8-1>.
  const compressionMethods = r.opaque8("ClientHello.compression_methods");
  if (compressionMethods.length === 0) {
    throw new DecodeError("ClientHello.compression_methods", "empty");
  }
  const extensions = readExtensions(r, "ClientHello.extensions");
  r.end("ClientHello");
  return { clientVersion, random, sessionId, cookie, cipherSuites, compressionMethods, extensions };
}

/** Encodes a ClientHello body; the extensions block is omitted when the list is empty. */
export function encodeClientHello(m: ClientHello): Uint8Array {
  need(m.random.length === RANDOM_LENGTH, "ClientHello", "random must be 32 bytes");
  need(m.sessionId.length <= MAX_SESSION_ID_LENGTH, "ClientHello", "session_id over 32 bytes");
  need(m.cipherSuites.length > 0, "ClientHello", "no cipher suites");
  need(m.compressionMethods.length > 0, "ClientHello", "no compression methods");
  const w = new Writer();
  w.u16(m.clientVersion).bytes(m.random).opaque8(m.sessionId).opaque8(m.cookie);
  w.vec16((s) => {
    for (const suite of m.cipherSuites) s.u16(suite);
  });
  w.opaque8(m.compressionMethods);
  if (m.extensions.length > 0) writeExtensions(w, m.extensions);
  return w.finish();
}

/** Decodes a HelloVerifyRequest body (RFC 6347 §4.2.1). */
export function decodeHelloVerifyRequest(body: Uint8Array): HelloVerifyRequest {
  const r = new Reader(body);
  const serverVersion = r.u16("HelloVerifyRequest.server_version");
  const cookie = r.opaque8("HelloVerifyRequest.cookie");
  r.end("HelloVerifyRequest");
  return { serverVersion, cookie };
}

/** Encodes a HelloVerifyRequest body (RFC 6347 §4.2.1). */
export function encodeHelloVerifyRequest(m: HelloVerifyRequest): Uint8Array {
  return new Writer(3 + m.cookie.length).u16(m.serverVersion).opaque8(m.cookie).finish();
}

/** Decodes a ServerHello body (RFC 5246 §7.4.1.3). */
export function decodeServerHello(body: Uint8Array): ServerHello {
  const r = new Reader(body);
  const serverVersion = r.u16("ServerHello.server_version");
  const random = readRandom(r, "ServerHello.random");
  const sessionId = readSessionId(r, "ServerHello.session_id");
  const cipherSuite = r.u16("ServerHello.cipher_suite");
  const compressionMethod = r.u8("ServerHello.compression_method");
  const extensions = readExtensions(r, "ServerHello.extensions");
  r.end("ServerHello");
  return { serverVersion, random, sessionId, cipherSuite, compressionMethod, extensions };
}

/**
 * Encodes a ServerHello body. The extensions block is left out when the list
 * is empty, as RFC 5246 §7.4.1.3 allows and older peers expect.
 */
export function encodeServerHello(m: ServerHello): Uint8Array {
  need(m.random.length === RANDOM_LENGTH, "ServerHello", "random must be 32 bytes");
  need(m.sessionId.length <= MAX_SESSION_ID_LENGTH, "ServerHello", "session_id over 32 bytes");
  const w = new Writer();
  w.u16(m.serverVersion).bytes(m.random).opaque8(m.sessionId);
  w.u16(m.cipherSuite).u8(m.compressionMethod);
  if (m.extensions.length > 0) writeExtensions(w, m.extensions);
  return w.finish();
}

/**
 * Encodes a plain-PSK ServerKeyExchange: `opaque psk_identity_hint<0..2^16-1>`
 * (RFC 4279 §2). RFC 4279 §2 lets the server omit the whole message when it
 * has no hint; that choice belongs to the caller.
 */
export function encodePskServerKeyExchange(hint: Uint8Array): Uint8Array {
  return new Writer(2 + hint.length).opaque16(hint).finish();
}

/** Decodes a plain-PSK ServerKeyExchange (RFC 4279 §2). */
export function decodePskServerKeyExchange(body: Uint8Array): { identityHint: Uint8Array } {
  const r = new Reader(body);
  const identityHint = r.opaque16("ServerKeyExchange.psk_identity_hint");
  r.end("ServerKeyExchange");
  return { identityHint };
}

/** An ECDHE_PSK ServerKeyExchange (RFC 5489 §2). */
export interface EcdhePskServerKeyExchange {
  /** psk_identity_hint, possibly empty (RFC 5489 §2 sends the message regardless). */
  identityHint: Uint8Array;
  /** NamedGroup of the ephemeral key. */
  group: number;
  /** The server's ephemeral public key (ECPoint), 1..255 bytes. */
  publicKey: Uint8Array;
}

/**
 * Encodes an ECDHE_PSK ServerKeyExchange: the hint, then ServerECDHParams
 * `{ ECCurveType curve_type = named_curve; NamedCurve namedcurve; ECPoint public; }`
 * (RFC 5489 §2, RFC 8422 §5.4). It carries no signature: the PSK authenticates.
 */
export function encodeEcdhePskServerKeyExchange(m: EcdhePskServerKeyExchange): Uint8Array {
  need(m.publicKey.length > 0, "ServerECDHParams", "empty public key");
  return new Writer(6 + m.identityHint.length + m.publicKey.length)
    .opaque16(m.identityHint)
    .u8(NAMED_CURVE)
    .u16(m.group)
    .opaque8(m.publicKey)
    .finish();
}

/** Decodes an ECDHE_PSK ServerKeyExchange (RFC 5489 §2). */
export function decodeEcdhePskServerKeyExchange(body: Uint8Array): EcdhePskServerKeyExchange {
  const r = new Reader(body);
  const identityHint = r.opaque16("ServerKeyExchange.psk_identity_hint");
  // RFC 8422 §5.4 deprecates explicit_prime and explicit_char2 curves, so
  // anything but named_curve cannot be parsed further.
  const curveType = r.u8("ServerECDHParams.curve_type");
  if (curveType !== NAMED_CURVE) {
    throw new DecodeError("ServerECDHParams.curve_type", `unsupported curve type ${curveType}`);
  }
  const group = r.u16("ServerECDHParams.namedcurve");
  // RFC 8422 §5.4: opaque point <1..2^8-1>.
  const publicKey = r.opaque8("ServerECDHParams.public");
  if (publicKey.length === 0) throw new DecodeError("ServerECDHParams.public", "empty");
  r.end("ServerKeyExchange");
  return { identityHint, group, publicKey };
}

/** Certificates in one Certificate message, at most: a chain is a leaf and a few CAs. */
export const MAX_CHAIN_CERTIFICATES = 10;

/**
 * Encodes a Certificate message: `ASN.1Cert certificate_list<0..2^24-1>`,
 * each `opaque ASN.1Cert<1..2^24-1>` (RFC 5246 §7.4.2), leaf first.
 */
export function encodeCertificate(chain: readonly Uint8Array[]): Uint8Array {
  const size = chain.reduce((n, c) => n + 3 + c.length, 3);
  return new Writer(size)
    .vec24((w) => {
      for (const der of chain) {
        need(der.length > 0, "Certificate", "empty certificate");
        w.opaque24(der);
      }
    })
    .finish();
}

/**
 * Decodes a Certificate message into its DER certificates (views of
 * `body`), leaf first; at most {@link MAX_CHAIN_CERTIFICATES}, none empty.
 */
export function decodeCertificate(body: Uint8Array): Uint8Array[] {
  const r = new Reader(body);
  const list = r.vec24("Certificate.certificate_list");
  r.end("Certificate");
  const chain: Uint8Array[] = [];
  while (list.remaining > 0) {
    if (chain.length === MAX_CHAIN_CERTIFICATES) {
      throw new DecodeError("Certificate.certificate_list", "too many certificates");
    }
    const der = list.opaque24("Certificate.ASN.1Cert");
    if (der.length === 0) throw new DecodeError("Certificate.ASN.1Cert", "empty");
    chain.push(der);
  }
  return chain;
}

/**
 * Encodes the Certificate message of a raw public key: `opaque
 * ASN.1_subjectPublicKeyInfo<1..2^24-1>` alone, in place of the chain
 * (RFC 7250 §3).
 */
export function encodeRawPublicKey(spki: Uint8Array): Uint8Array {
  need(spki.length > 0, "Certificate", "empty SubjectPublicKeyInfo");
  return new Writer(3 + spki.length).opaque24(spki).finish();
}

/** Decodes a raw public key's Certificate message: the DER SubjectPublicKeyInfo (a view of `body`). */
export function decodeRawPublicKey(body: Uint8Array): Uint8Array {
  const r = new Reader(body);
  const spki = r.opaque24("Certificate.ASN.1_subjectPublicKeyInfo");
  if (spki.length === 0) throw new DecodeError("Certificate.ASN.1_subjectPublicKeyInfo", "empty");
  r.end("Certificate");
  return spki;
}

/**
 * ServerECDHParams `{ curve_type = named_curve; NamedCurve namedcurve;
 * ECPoint public; }` (RFC 8422 §5.4): what a signed ServerKeyExchange
 * carries and, after the two randoms, what its signature covers.
 */
export function encodeServerEcdhParams(group: number, publicKey: Uint8Array): Uint8Array {
  need(publicKey.length > 0 && publicKey.length < 256, "ServerECDHParams", "bad public key");
  return new Writer(4 + publicKey.length).u8(NAMED_CURVE).u16(group).opaque8(publicKey).finish();
}

/** A ServerKeyExchange of ECDHE_ECDSA or ECDHE_RSA (RFC 8422 §5.4). */
export interface SignedEcdheServerKeyExchange {
  /** NamedGroup of the ephemeral key. */
  group: number;
  /** The server's ephemeral public key (ECPoint), 1..255 bytes. */
  publicKey: Uint8Array;
  /** SignatureAndHashAlgorithm code (RFC 5246 §7.4.1.4.1). */
  scheme: number;
  /** The signature over client_random + server_random + ServerECDHParams. */
  signature: Uint8Array;
}

/** Encodes a signed ECDHE ServerKeyExchange: params, then `digitally-signed` (RFC 5246 §4.7). */
export function encodeSignedEcdheServerKeyExchange(m: SignedEcdheServerKeyExchange): Uint8Array {
  const params = encodeServerEcdhParams(m.group, m.publicKey);
  return new Writer(params.length + 4 + m.signature.length)
    .bytes(params)
    .u16(m.scheme)
    .opaque16(m.signature)
    .finish();
}

/** Decodes a signed ECDHE ServerKeyExchange; `params` is the signed part as sent. */
export function decodeSignedEcdheServerKeyExchange(
  body: Uint8Array,
): SignedEcdheServerKeyExchange & { params: Uint8Array } {
  const r = new Reader(body);
  const curveType = r.u8("ServerECDHParams.curve_type");
  if (curveType !== NAMED_CURVE) {
    throw new DecodeError("ServerECDHParams.curve_type", `unsupported curve type ${curveType}`);
  }
  const group = r.u16("ServerECDHParams.namedcurve");
  const publicKey = r.opaque8("ServerECDHParams.public");
  if (publicKey.length === 0) throw new DecodeError("ServerECDHParams.public", "empty");
  const params = body.subarray(0, 4 + publicKey.length);
  const scheme = r.u16("ServerKeyExchange.algorithm");
  const signature = r.opaque16("ServerKeyExchange.signature");
  r.end("ServerKeyExchange");
  return { group, publicKey, scheme, signature, params };
}

/** ClientCertificateType values of a CertificateRequest (RFC 5246 §7.4.4, RFC 8422 §5.5). */
export const ClientCertificateType = { rsa_sign: 1, ecdsa_sign: 64 } as const;

/** A CertificateRequest (RFC 5246 §7.4.4). */
export interface CertificateRequest {
  /** ClientCertificateType values, 1..255 of them. */
  certificateTypes: number[];
  /** SignatureAndHashAlgorithm codes the server verifies. */
  schemes: number[];
  /** DER DistinguishedNames of acceptable CAs (may be empty: any). */
  authorities: Uint8Array[];
}

/** Encodes a CertificateRequest: types<1..2^8-1>, algorithms<2..2^16-2>, authorities<0..2^16-1>. */
export function encodeCertificateRequest(m: CertificateRequest): Uint8Array {
  need(m.certificateTypes.length > 0, "CertificateRequest", "no certificate type");
  need(m.schemes.length > 0, "CertificateRequest", "no signature algorithm");
  return new Writer(64)
    .vec8((w) => {
      for (const t of m.certificateTypes) w.u8(t);
    })
    .vec16((w) => {
      for (const c of m.schemes) w.u16(c);
    })
    .vec16((w) => {
      for (const dn of m.authorities) w.opaque16(dn);
    })
    .finish();
}

/** Decodes a CertificateRequest (RFC 5246 §7.4.4). */
export function decodeCertificateRequest(body: Uint8Array): CertificateRequest {
  const r = new Reader(body);
  const types = r.vec8("CertificateRequest.certificate_types");
  if (types.remaining === 0) throw new DecodeError("CertificateRequest.certificate_types", "empty");
  const certificateTypes: number[] = [];
  while (types.remaining > 0) certificateTypes.push(types.u8("ClientCertificateType"));
  const algorithms = r.vec16("CertificateRequest.supported_signature_algorithms");
  if (algorithms.remaining === 0 || algorithms.remaining % 2 !== 0) {
    throw new DecodeError("CertificateRequest.supported_signature_algorithms", "bad length");
  }
  const schemes: number[] = [];
  while (algorithms.remaining > 0) schemes.push(algorithms.u16("SignatureAndHashAlgorithm"));
  const cas = r.vec16("CertificateRequest.certificate_authorities");
  const authorities: Uint8Array[] = [];
  while (cas.remaining > 0) authorities.push(cas.opaque16("DistinguishedName"));
  r.end("CertificateRequest");
  return { certificateTypes, schemes, authorities };
}

/** A CertificateVerify: `digitally-signed struct { handshake_messages }` (RFC 5246 §7.4.8). */
export interface CertificateVerify {
  /** SignatureAndHashAlgorithm code. */
  scheme: number;
  signature: Uint8Array;
}

/** Encodes a CertificateVerify. */
export function encodeCertificateVerify(m: CertificateVerify): Uint8Array {
  return new Writer(4 + m.signature.length).u16(m.scheme).opaque16(m.signature).finish();
}

/** Decodes a CertificateVerify. */
export function decodeCertificateVerify(body: Uint8Array): CertificateVerify {
  const r = new Reader(body);
  const scheme = r.u16("CertificateVerify.algorithm");
  const signature = r.opaque16("CertificateVerify.signature");
  if (signature.length === 0) throw new DecodeError("CertificateVerify.signature", "empty");
  r.end("CertificateVerify");
  return { scheme, signature };
}

/** Encodes an ECDHE ClientKeyExchange: ClientECDiffieHellmanPublic `ECPoint ecdh_Yc` (RFC 8422 §5.7). */
export function encodeEcdheClientKeyExchange(publicKey: Uint8Array): Uint8Array {
  need(publicKey.length > 0, "ClientECDiffieHellmanPublic", "empty public key");
  return new Writer(1 + publicKey.length).opaque8(publicKey).finish();
}

/** Decodes an ECDHE ClientKeyExchange (RFC 8422 §5.7: the point is always explicit). */
export function decodeEcdheClientKeyExchange(body: Uint8Array): { publicKey: Uint8Array } {
  const r = new Reader(body);
  const publicKey = r.opaque8("ClientECDiffieHellmanPublic.ecdh_Yc");
  if (publicKey.length === 0) throw new DecodeError("ClientECDiffieHellmanPublic.ecdh_Yc", "empty");
  r.end("ClientKeyExchange");
  return { publicKey };
}

/**
 * Encodes a plain-PSK ClientKeyExchange: `opaque psk_identity<0..2^16-1>`
 * (RFC 4279 §2). The codec takes any length the wire allows; the RFC 4279
 * §5.3 size policy is checked by the caller.
 */
export function encodePskClientKeyExchange(identity: Uint8Array): Uint8Array {
  return new Writer(2 + identity.length).opaque16(identity).finish();
}

/** Decodes a plain-PSK ClientKeyExchange (RFC 4279 §2). */
export function decodePskClientKeyExchange(body: Uint8Array): { identity: Uint8Array } {
  const r = new Reader(body);
  const identity = r.opaque16("ClientKeyExchange.psk_identity");
  r.end("ClientKeyExchange");
  return { identity };
}

/** An ECDHE_PSK ClientKeyExchange (RFC 5489 §2). */
export interface EcdhePskClientKeyExchange {
  /** psk_identity, 0..65535 bytes on the wire. */
  identity: Uint8Array;
  /** The client's ephemeral public key (ecdh_Yc), 1..255 bytes. */
  publicKey: Uint8Array;
}

/**
 * Encodes an ECDHE_PSK ClientKeyExchange: the identity, then
 * ClientECDiffieHellmanPublic `ECPoint ecdh_Yc` (RFC 5489 §2, RFC 8422 §5.7).
 */
export function encodeEcdhePskClientKeyExchange(m: EcdhePskClientKeyExchange): Uint8Array {
  need(m.publicKey.length > 0, "ClientECDiffieHellmanPublic", "empty public key");
  return new Writer(3 + m.identity.length + m.publicKey.length)
    .opaque16(m.identity)
    .opaque8(m.publicKey)
    .finish();
}

/** Decodes an ECDHE_PSK ClientKeyExchange (RFC 5489 §2). */
export function decodeEcdhePskClientKeyExchange(body: Uint8Array): EcdhePskClientKeyExchange {
  const r = new Reader(body);
  const identity = r.opaque16("ClientKeyExchange.psk_identity");
  // RFC 8422 §5.7: the point is always sent explicitly, opaque point <1..2^8-1>.
  const publicKey = r.opaque8("ClientECDiffieHellmanPublic.ecdh_Yc");
  if (publicKey.length === 0) {
    throw new DecodeError("ClientECDiffieHellmanPublic.ecdh_Yc", "empty");
  }
  r.end("ClientKeyExchange");
  return { identity, publicKey };
}

/**
 * Decodes a Finished body: verify_data, which RFC 5246 §7.4.9 fixes at 12
 * bytes for every suite that does not say otherwise (none of ours do). Returns
 * a subarray; compare it in constant time.
 */
export function decodeFinished(body: Uint8Array): Uint8Array {
  if (body.length !== VERIFY_DATA_LENGTH) {
    throw new DecodeError("Finished.verify_data", `${body.length} bytes, expected 12`);
  }
  return body;
}

/** Encodes a Finished body (a copy of the 12 bytes of verify_data). */
export function encodeFinished(verifyData: Uint8Array): Uint8Array {
  need(verifyData.length === VERIFY_DATA_LENGTH, "Finished", "verify_data must be 12 bytes");
  return verifyData.slice();
}

/** NewSessionTicket (RFC 5077 §3.3): a ticket and how long it may be kept, seconds (0: unsaid). */
export interface NewSessionTicket {
  lifetimeHint: number;
  ticket: Uint8Array;
}

export function decodeNewSessionTicket(body: Uint8Array): NewSessionTicket {
  const r = new Reader(body);
  const lifetimeHint = r.u16("NewSessionTicket.ticket_lifetime_hint") * 0x10000 +
    r.u16("NewSessionTicket.ticket_lifetime_hint");
  const ticket = r.opaque16("NewSessionTicket.ticket");
  r.end("NewSessionTicket");
  return { lifetimeHint, ticket };
}

export function encodeNewSessionTicket(m: NewSessionTicket): Uint8Array {
  need(
    Number.isInteger(m.lifetimeHint) && m.lifetimeHint >= 0 && m.lifetimeHint <= 0xffffffff,
    "NewSessionTicket",
    "ticket_lifetime_hint must be a uint32",
  );
  need(m.ticket.length <= 0xffff, "NewSessionTicket", "ticket over 65535 bytes");
  return new Writer(6 + m.ticket.length)
    .u16(Math.floor(m.lifetimeHint / 0x10000))
    .u16(m.lifetimeHint & 0xffff)
    .opaque16(m.ticket)
    .finish();
}

/** Checks a ServerHelloDone body, which RFC 5246 §7.4.5 defines as empty. */
export function decodeServerHelloDone(body: Uint8Array): void {
  new Reader(body).end("ServerHelloDone");
}

/** The (empty) ServerHelloDone body. */
export function encodeServerHelloDone(): Uint8Array {
  return new Uint8Array(0);
}

/** AlertLevel (RFC 5246 §7.2). */
export const AlertLevel = { Warning: 1, Fatal: 2 } as const;

/** The AlertDescription values this server sends or acts on (RFC 5246 §7.2, RFC 4279 §2). */
export const AlertDescription = {
  CloseNotify: 0,
  UnexpectedMessage: 10,
  BadRecordMac: 20,
  RecordOverflow: 22,
  HandshakeFailure: 40,
  BadCertificate: 42,
  UnsupportedCertificate: 43,
  CertificateExpired: 45,
  CertificateUnknown: 46,
  IllegalParameter: 47,
  UnknownCa: 48,
  DecodeError: 50,
  DecryptError: 51,
  ProtocolVersion: 70,
  InsufficientSecurity: 71,
  InternalError: 80,
  /** RFC 8446 §6.2. */
  InappropriateFallback: 86,
  UserCanceled: 90,
  NoRenegotiation: 100,
  /** RFC 8446 §6.2. */
  MissingExtension: 109,
  UnsupportedExtension: 110,
  UnknownPskIdentity: 115,
  /** RFC 8446 §6.2: a client certificate is required and none came. */
  CertificateRequired: 116,
} as const;

/** Encodes an alert: `struct { AlertLevel level; AlertDescription description; }` (RFC 5246 §7.2). */
export function encodeAlert(level: number, description: number): Uint8Array {
  return Uint8Array.of(level & 0xff, description & 0xff);
}

/**
 * Decodes an alert. Level and description are returned as received: RFC 5246
 * §7.2 lets a peer send descriptions we do not know, and what to do with an
 * odd level is the caller's decision.
 */
export function decodeAlert(body: Uint8Array): { level: number; description: number } {
  const r = new Reader(body);
  const level = r.u8("Alert.level");
  const description = r.u8("Alert.description");
  r.end("Alert");
  return { level, description };
}

/**
 * Registered alert names, wider than {@link AlertDescription} so that logs
 * name whatever a peer sends (RFC 5246 §7.2, RFC 4279 §2, RFC 6066 §9,
 * RFC 7301 §3.2, RFC 7507 §2).
 */
const ALERT_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "close_notify"],
  [10, "unexpected_message"],
  [20, "bad_record_mac"],
  [21, "decryption_failed"],
  [22, "record_overflow"],
  [30, "decompression_failure"],
  [40, "handshake_failure"],
  [41, "no_certificate"],
  [42, "bad_certificate"],
  [43, "unsupported_certificate"],
  [44, "certificate_revoked"],
  [45, "certificate_expired"],
  [46, "certificate_unknown"],
  [47, "illegal_parameter"],
  [48, "unknown_ca"],
  [49, "access_denied"],
  [50, "decode_error"],
  [51, "decrypt_error"],
  [60, "export_restriction"],
  [70, "protocol_version"],
  [71, "insufficient_security"],
  [80, "internal_error"],
  [86, "inappropriate_fallback"],
  [90, "user_canceled"],
  [100, "no_renegotiation"],
  [109, "missing_extension"],
  [110, "unsupported_extension"],
  [111, "certificate_unobtainable"],
  [112, "unrecognized_name"],
  [113, "bad_certificate_status_response"],
  [114, "bad_certificate_hash_value"],
  [115, "unknown_psk_identity"],
  [116, "certificate_required"],
  [120, "no_application_protocol"],
]);

/** The snake_case RFC name of an alert description, or `alert_N` when unregistered. */
export function alertName(description: number): string {
  return ALERT_NAMES.get(description) ?? `alert_${description}`;
}
