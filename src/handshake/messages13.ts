/**
 * Wire codecs of what DTLS 1.3 adds to the handshake (RFC 8446 §4, RFC 9147
 * §5 and §7): the ClientHello extensions a server reads (supported_versions,
 * key_share, psk_key_exchange_modes, pre_shared_key, cookie), the
 * ServerHello and HelloRetryRequest it writes, EncryptedExtensions,
 * NewSessionTicket, KeyUpdate and the ACK record's body.
 *
 * Decoders throw only {@link DecodeError} and return views of their input;
 * encoders throw a RangeError for a value the wire cannot carry.
 *
 * @module
 */

import { DecodeError, Reader } from "../codec/reader.ts";
import { Writer, writeU32 } from "../codec/writer.ts";
import type { Extension } from "./messages.ts";

/** DTLS 1.3's version number (RFC 9147 §5.3). */
export const DTLS_1_3 = 0xfefc;

/** The handshake message types DTLS 1.3 adds (RFC 8446 §4, RFC 9147 §5.2). */
export const HandshakeType13 = {
  NewSessionTicket: 4,
  EndOfEarlyData: 5,
  EncryptedExtensions: 8,
  KeyUpdate: 24,
  RequestConnectionId: 9,
  NewConnectionId: 10,
  /** The synthetic message that stands for the first ClientHello after a HelloRetryRequest (§4.4.1). */
  MessageHash: 254,
} as const;

/** The extension code points of TLS 1.3 (RFC 8446 §4.2). */
export const ExtensionType13 = {
  PreSharedKey: 41,
  EarlyData: 42,
  SupportedVersions: 43,
  Cookie: 44,
  PskKeyExchangeModes: 45,
  KeyShare: 51,
} as const;

/** connection_id (RFC 9146 §3), in DTLS 1.3's ClientHello and ServerHello (RFC 9147 §9). */
const CONNECTION_ID_EXTENSION = 54;

/** PskKeyExchangeMode (RFC 8446 §4.2.9). */
export const PskMode = { PskKe: 0, PskDheKe: 1 } as const;

/** The ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3). */
export const HELLO_RETRY_REQUEST_RANDOM = new Uint8Array([
  0xcf,
  0x21,
  0xad,
  0x74,
  0xe5,
  0x9a,
  0x61,
  0x11,
  0xbe,
  0x1d,
  0x8c,
  0x02,
  0x1e,
  0x65,
  0xb8,
  0x91,
  0xc2,
  0xa2,
  0x11,
  0x16,
  0x7a,
  0xbb,
  0x8c,
  0x5e,
  0x07,
  0x9e,
  0x09,
  0xe2,
  0xc8,
  0xa8,
  0x33,
  0x9c,
]);

/**
 * The last eight bytes of a ServerHello.random of a TLS 1.3 server that
 * chose TLS 1.2 (RFC 8446 §4.1.3): "DOWNGRD" and 01.
 */
export const DOWNGRADE_SENTINEL_TLS12 = new Uint8Array([
  0x44,
  0x4f,
  0x57,
  0x4e,
  0x47,
  0x52,
  0x44,
  0x01,
]);

/** The versions of a ClientHello's supported_versions (RFC 8446 §4.2.1). */
export function decodeClientSupportedVersions(data: Uint8Array): number[] {
  const r = new Reader(data);
  const list = r.vec8("supported_versions");
  r.end("supported_versions");
  if (list.remaining < 2 || list.remaining % 2 !== 0) {
    throw new DecodeError("supported_versions", "not a list of versions");
  }
  const versions: number[] = [];
  while (list.remaining > 0) versions.push(list.u16("supported_versions.version"));
  return versions;
}

/** One KeyShareEntry (RFC 8446 §4.2.8). */
export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

/** A ClientHello's key_share: its entries in the client's order. */
export function decodeClientKeyShares(data: Uint8Array): KeyShareEntry[] {
  const r = new Reader(data);
  const list = r.vec16("key_share");
  r.end("key_share");
  const entries: KeyShareEntry[] = [];
  while (list.remaining > 0) {
    const group = list.u16("key_share.group");
    const keyExchange = list.opaque16("key_share.key_exchange");
    if (keyExchange.length === 0) throw new DecodeError("key_share.key_exchange", "empty");
    entries.push({ group, keyExchange });
  }
  return entries;
}

/** A ClientHello's psk_key_exchange_modes (RFC 8446 §4.2.9). */
export function decodePskModes(data: Uint8Array): number[] {
  const r = new Reader(data);
  const list = r.vec8("psk_key_exchange_modes");
  r.end("psk_key_exchange_modes");
  if (list.remaining === 0) throw new DecodeError("psk_key_exchange_modes", "empty");
  const modes: number[] = [];
  while (list.remaining > 0) modes.push(list.u8("psk_key_exchange_modes.mode"));
  return modes;
}

/** One PskIdentity of an OfferedPsks (RFC 8446 §4.2.11). */
export interface PskIdentity {
  readonly identity: Uint8Array;
  readonly obfuscatedTicketAge: number;
}

/** A ClientHello's pre_shared_key: identities, their binders, and where the binders start. */
export interface OfferedPsks {
  readonly identities: readonly PskIdentity[];
  readonly binders: readonly Uint8Array[];
  /** Bytes of the binders list, its length prefix included: what the binder's transcript leaves out. */
  readonly bindersLength: number;
}

/** Decodes a ClientHello's pre_shared_key extension (RFC 8446 §4.2.11). */
export function decodeOfferedPsks(data: Uint8Array): OfferedPsks {
  const r = new Reader(data);
  const ids = r.vec16("pre_shared_key.identities");
  const identities: PskIdentity[] = [];
  while (ids.remaining > 0) {
    const identity = ids.opaque16("pre_shared_key.identity");
    if (identity.length === 0) throw new DecodeError("pre_shared_key.identity", "empty");
    const high = ids.u16("pre_shared_key.obfuscated_ticket_age");
    const low = ids.u16("pre_shared_key.obfuscated_ticket_age");
    identities.push({ identity, obfuscatedTicketAge: high * 0x10000 + low });
  }
  const bindersStart = r.position;
  const list = r.vec16("pre_shared_key.binders");
  r.end("pre_shared_key");
  const binders: Uint8Array[] = [];
  while (list.remaining > 0) {
    const binder = list.opaque8("pre_shared_key.binder");
    if (binder.length < 32) throw new DecodeError("pre_shared_key.binder", "shorter than 32 bytes");
    binders.push(binder);
  }
  if (identities.length === 0 || identities.length !== binders.length) {
    throw new DecodeError("pre_shared_key", "identities and binders do not pair up");
  }
  return { identities, binders, bindersLength: data.length - bindersStart };
}

/** A HelloRetryRequest's or a ClientHello's cookie extension (RFC 8446 §4.2.2). */
export function decodeCookieExtension(data: Uint8Array): Uint8Array {
  const r = new Reader(data);
  const cookie = r.opaque16("cookie");
  r.end("cookie");
  if (cookie.length === 0) throw new DecodeError("cookie", "empty");
  return cookie;
}

/** What a DTLS 1.3 ServerHello or HelloRetryRequest says. */
export interface ServerHello13 {
  /** 32 bytes; {@link HELLO_RETRY_REQUEST_RANDOM} for a HelloRetryRequest. */
  readonly random: Uint8Array;
  /** The client's legacy_session_id, echoed. */
  readonly sessionId: Uint8Array;
  readonly cipherSuite: number;
  /** The ServerHello's key share, or a HelloRetryRequest's group without one. */
  readonly keyShare?: KeyShareEntry | { readonly group: number };
  /** The index of the PSK identity chosen (ServerHello only). */
  readonly selectedIdentity?: number;
  /** A HelloRetryRequest's cookie. */
  readonly cookie?: Uint8Array;
  /** The Connection ID the server wants in the records it receives (RFC 9147 §9, ServerHello only). */
  readonly connectionId?: Uint8Array;
}

/**
 * The body of a DTLS 1.3 ServerHello or HelloRetryRequest (RFC 8446 §4.1.3,
 * RFC 9147 §5.3): legacy_version DTLS 1.2, supported_versions DTLS 1.3.
 * The extensions come in one fixed order, so that a stateless server
 * rebuilds its HelloRetryRequest byte for byte.
 */
export function encodeServerHello13(m: ServerHello13): Uint8Array {
  if (m.random.length !== 32) {
    throw new RangeError("Cannot encode ServerHello: random not 32 bytes");
  }
  if (m.sessionId.length > 32) throw new RangeError("Cannot encode ServerHello: session_id");
  const w = new Writer(128);
  w.u16(0xfefd).bytes(m.random).opaque8(m.sessionId).u16(m.cipherSuite).u8(0);
  w.vec16((list) => {
    list.u16(ExtensionType13.SupportedVersions).opaque16(u16Bytes(DTLS_1_3));
    if (m.keyShare !== undefined) {
      const share = m.keyShare;
      list.u16(ExtensionType13.KeyShare).vec16((e) => {
        e.u16(share.group);
        if ("keyExchange" in share) e.opaque16(share.keyExchange);
      });
    }
    if (m.selectedIdentity !== undefined) {
      list.u16(ExtensionType13.PreSharedKey).opaque16(u16Bytes(m.selectedIdentity));
    }
    if (m.cookie !== undefined) {
      const cookie = m.cookie;
      list.u16(ExtensionType13.Cookie).vec16((e) => e.opaque16(cookie));
    }
    if (m.connectionId !== undefined) {
      const cid = m.connectionId;
      list.u16(CONNECTION_ID_EXTENSION).vec16((e) => e.opaque8(cid));
    }
  });
  return w.finish();
}

/** Decodes a DTLS 1.3 ServerHello or HelloRetryRequest body (for our client and the tests). */
export function decodeServerHello13(body: Uint8Array): ServerHello13 & {
  readonly legacyVersion: number;
  readonly extensions: Extension[];
} {
  const r = new Reader(body);
  const legacyVersion = r.u16("ServerHello.legacy_version");
  const random = r.bytes(32, "ServerHello.random");
  const sessionId = r.opaque8("ServerHello.legacy_session_id_echo");
  const cipherSuite = r.u16("ServerHello.cipher_suite");
  if (r.u8("ServerHello.legacy_compression_method") !== 0) {
    throw new DecodeError("ServerHello.legacy_compression_method", "not null");
  }
  const extensions = decodeExtensionList(r.vec16("ServerHello.extensions"));
  r.end("ServerHello");
  const hrr = equalBytes(random, HELLO_RETRY_REQUEST_RANDOM);
  let keyShare: KeyShareEntry | { group: number } | undefined;
  let selectedIdentity: number | undefined;
  let cookie: Uint8Array | undefined;
  let connectionId: Uint8Array | undefined;
  for (const e of extensions) {
    const x = new Reader(e.data);
    if (e.type === ExtensionType13.KeyShare) {
      const group = x.u16("key_share.group");
      keyShare = hrr ? { group } : { group, keyExchange: x.opaque16("key_share.key_exchange") };
      x.end("key_share");
    } else if (e.type === ExtensionType13.PreSharedKey) {
      selectedIdentity = x.u16("pre_shared_key.selected_identity");
      x.end("pre_shared_key");
    } else if (e.type === ExtensionType13.Cookie) {
      cookie = decodeCookieExtension(e.data);
    } else if (e.type === CONNECTION_ID_EXTENSION) {
      connectionId = x.opaque8("connection_id.cid");
      x.end("connection_id");
    }
  }
  return {
    legacyVersion,
    random,
    sessionId,
    cipherSuite,
    extensions,
    ...(keyShare === undefined ? {} : { keyShare }),
    ...(selectedIdentity === undefined ? {} : { selectedIdentity }),
    ...(cookie === undefined ? {} : { cookie }),
    ...(connectionId === undefined ? {} : { connectionId }),
  };
}

/** A list of extensions (the body of an extensions vector). */
function decodeExtensionList(list: Reader): Extension[] {
  const extensions: Extension[] = [];
  while (list.remaining > 0) {
    const type = list.u16("extension_type");
    const data = list.opaque16("extension_data");
    extensions.push({ type, data });
  }
  return extensions;
}

/** EncryptedExtensions (RFC 8446 §4.3.1). */
export function encodeEncryptedExtensions(extensions: readonly Extension[]): Uint8Array {
  const w = new Writer(64);
  w.vec16((list) => {
    for (const e of extensions) list.u16(e.type).opaque16(e.data);
  });
  return w.finish();
}

/** Decodes EncryptedExtensions. */
export function decodeEncryptedExtensions(body: Uint8Array): Extension[] {
  const r = new Reader(body);
  const extensions = decodeExtensionList(r.vec16("EncryptedExtensions.extensions"));
  r.end("EncryptedExtensions");
  return extensions;
}

/**
 * A TLS 1.3 Certificate (RFC 8446 §4.4.2): `opaque
 * certificate_request_context<0..2^8-1>; CertificateEntry
 * certificate_list<0..2^24-1>`, each entry `opaque cert_data<1..2^24-1>;
 * Extension extensions<0..2^16-1>`. A server's context is empty and it
 * sends no entry extensions (we ask for no OCSP or SCT).
 */
export function encodeCertificate13(chain: readonly Uint8Array[]): Uint8Array {
  const size = chain.reduce((n, c) => n + 5 + c.length, 4);
  return new Writer(size)
    .opaque8(new Uint8Array(0))
    .vec24((list) => {
      for (const der of chain) {
        if (der.length === 0) throw new RangeError("Cannot encode an empty certificate");
        list.opaque24(der).u16(0);
      }
    })
    .finish();
}

/**
 * Decodes a TLS 1.3 Certificate into its DER certificates (views of
 * `body`), leaf first: at most `maxCertificates`, none empty, the context
 * empty (we never send a post-handshake CertificateRequest); the entries'
 * extensions are read and ignored (RFC 8446 §4.4.2: only ones we asked for
 * may be there, and we ask for none, so any is ignored rather than trusted).
 */
export function decodeCertificate13(body: Uint8Array, maxCertificates: number): Uint8Array[] {
  const r = new Reader(body);
  const context = r.opaque8("Certificate.certificate_request_context");
  if (context.length !== 0) {
    throw new DecodeError("Certificate.certificate_request_context", "not empty");
  }
  const list = r.vec24("Certificate.certificate_list");
  r.end("Certificate");
  const chain: Uint8Array[] = [];
  while (list.remaining > 0) {
    if (chain.length === maxCertificates) {
      throw new DecodeError("Certificate.certificate_list", "too many certificates");
    }
    const der = list.opaque24("CertificateEntry.cert_data");
    if (der.length === 0) throw new DecodeError("CertificateEntry.cert_data", "empty");
    list.opaque16("CertificateEntry.extensions");
    chain.push(der);
  }
  return chain;
}

/** The context strings that keep one side's CertificateVerify from serving as the other's. */
const SIGNATURE_CONTEXTS = {
  server: new TextEncoder().encode("TLS 1.3, server CertificateVerify"),
  client: new TextEncoder().encode("TLS 1.3, client CertificateVerify"),
} as const;

/**
 * What a CertificateVerify signs (RFC 8446 §4.4.3): 64 spaces, the
 * context string of its sender's side, a zero byte, then the transcript
 * hash up to its Certificate.
 */
export function signatureContent(
  side: "server" | "client",
  transcriptHash: Uint8Array,
): Uint8Array {
  const context = SIGNATURE_CONTEXTS[side];
  const out = new Uint8Array(64 + context.length + 1 + transcriptHash.length);
  out.fill(0x20, 0, 64);
  out.set(context, 64);
  out.set(transcriptHash, 64 + context.length + 1);
  return out;
}

/**
 * A TLS 1.3 CertificateRequest in the main handshake (RFC 8446 §4.3.2): an
 * empty context and signature_algorithms, the one extension it must have.
 */
export function encodeCertificateRequest13(schemeCodes: readonly number[]): Uint8Array {
  const algorithms = new Writer(2 + 2 * schemeCodes.length).vec16((l) => {
    for (const c of schemeCodes) l.u16(c);
  }).finish();
  return new Writer(16 + algorithms.length)
    .opaque8(new Uint8Array(0))
    .vec16((list) => list.u16(SIGNATURE_ALGORITHMS_EXTENSION).opaque16(algorithms))
    .finish();
}

/**
 * Decodes a CertificateRequest: the signature schemes it takes (code
 * points), undefined when it has no signature_algorithms (which it must
 * have: missing_extension, RFC 8446 §4.3.2). A context is a decode error
 * here: the main handshake's request has none.
 */
export function decodeCertificateRequest13(body: Uint8Array): number[] | undefined {
  const r = new Reader(body);
  const context = r.opaque8("CertificateRequest.certificate_request_context");
  if (context.length !== 0) {
    throw new DecodeError("CertificateRequest.certificate_request_context", "not empty");
  }
  const extensions = decodeExtensionList(r.vec16("CertificateRequest.extensions"));
  r.end("CertificateRequest");
  const algorithms = extensions.find((e) => e.type === SIGNATURE_ALGORITHMS_EXTENSION);
  if (algorithms === undefined) return undefined;
  const a = new Reader(algorithms.data);
  const list = a.vec16("signature_algorithms");
  a.end("signature_algorithms");
  if (list.remaining === 0 || list.remaining % 2 !== 0) {
    throw new DecodeError("signature_algorithms", "empty or odd");
  }
  const codes: number[] = [];
  while (list.remaining > 0) codes.push(list.u16("signature_algorithms"));
  return codes;
}

/** signature_algorithms (RFC 8446 §4.2.3). */
const SIGNATURE_ALGORITHMS_EXTENSION = 13;

/** A TLS 1.3 NewSessionTicket (RFC 8446 §4.6.1). */
export interface NewSessionTicket13 {
  /** Seconds; at most 604800. */
  readonly lifetime: number;
  readonly ageAdd: number;
  readonly nonce: Uint8Array;
  readonly ticket: Uint8Array;
}

/** Encodes a NewSessionTicket body (no extensions: early data is never offered). */
export function encodeNewSessionTicket13(m: NewSessionTicket13): Uint8Array {
  if (m.ticket.length === 0) throw new RangeError("Cannot encode NewSessionTicket: empty ticket");
  const head = new Uint8Array(8);
  writeU32(head, 0, m.lifetime);
  writeU32(head, 4, m.ageAdd);
  return new Writer(m.ticket.length + 32).bytes(head).opaque8(m.nonce).opaque16(m.ticket)
    .u16(0).finish();
}

/** Decodes a NewSessionTicket body. */
export function decodeNewSessionTicket13(body: Uint8Array): NewSessionTicket13 {
  const r = new Reader(body);
  const lifetime = r.u16("NewSessionTicket.lifetime") * 0x10000 +
    r.u16("NewSessionTicket.lifetime");
  const ageAdd = r.u16("NewSessionTicket.age_add") * 0x10000 + r.u16("NewSessionTicket.age_add");
  const nonce = r.opaque8("NewSessionTicket.nonce");
  const ticket = r.opaque16("NewSessionTicket.ticket");
  if (ticket.length === 0) throw new DecodeError("NewSessionTicket.ticket", "empty");
  decodeExtensionList(r.vec16("NewSessionTicket.extensions"));
  r.end("NewSessionTicket");
  return { lifetime, ageAdd, nonce, ticket };
}

/** KeyUpdateRequest (RFC 8446 §4.6.3). */
export const KeyUpdateRequest = { NotRequested: 0, Requested: 1 } as const;

/** A KeyUpdate body. */
export function encodeKeyUpdate(requestUpdate: boolean): Uint8Array {
  return new Uint8Array([requestUpdate ? 1 : 0]);
}

/** Whether a KeyUpdate asks for one back; a value other than 0 or 1 is illegal_parameter's (RFC 8446 §4.6.3). */
export function decodeKeyUpdate(body: Uint8Array): number {
  const r = new Reader(body);
  const request = r.u8("KeyUpdate.request_update");
  r.end("KeyUpdate");
  return request;
}

/** ConnectionIdUsage of NewConnectionId (RFC 9147 §9). */
export const ConnectionIdUsage = { Immediate: 0, Spare: 1 } as const;

/** A NewConnectionId (RFC 9147 §9): CIDs the sender will accept, and whether to switch at once. */
export interface NewConnectionId {
  readonly cids: readonly Uint8Array[];
  readonly usage: number;
}

/** Encodes a NewConnectionId body. */
export function encodeNewConnectionId(m: NewConnectionId): Uint8Array {
  return new Writer(64).vec16((list) => {
    for (const cid of m.cids) list.opaque8(cid);
  }).u8(m.usage).finish();
}

/** Decodes a NewConnectionId body; an empty CID or a usage other than 0 or 1 is a decode error. */
export function decodeNewConnectionId(body: Uint8Array): NewConnectionId {
  const r = new Reader(body);
  const list = r.vec16("NewConnectionId.cids");
  const cids: Uint8Array[] = [];
  while (list.remaining > 0) {
    const cid = list.opaque8("NewConnectionId.cid");
    if (cid.length === 0) throw new DecodeError("NewConnectionId.cid", "empty");
    cids.push(cid);
  }
  const usage = r.u8("NewConnectionId.usage");
  r.end("NewConnectionId");
  if (usage !== ConnectionIdUsage.Immediate && usage !== ConnectionIdUsage.Spare) {
    throw new DecodeError("NewConnectionId.usage", `unknown ${usage}`);
  }
  return { cids, usage };
}

/** A RequestConnectionId body: how many CIDs the sender asks for. */
export function encodeRequestConnectionId(count: number): Uint8Array {
  return new Uint8Array([count]);
}

/** Decodes a RequestConnectionId body. */
export function decodeRequestConnectionId(body: Uint8Array): number {
  const r = new Reader(body);
  const count = r.u8("RequestConnectionId.num_cids");
  r.end("RequestConnectionId");
  return count;
}

/** A record number (RFC 9147 §4): its epoch and its sequence number within it. */
export interface RecordNumber {
  readonly epoch: number;
  readonly seq: number;
}

/** The largest epoch or sequence number we read from an ACK: 2^48 - 1. */
const MAX_RECORD_NUMBER_PART = 2 ** 48 - 1;

/** The body of an ACK record (RFC 9147 §7). */
export function encodeAck(records: readonly RecordNumber[]): Uint8Array {
  const w = new Writer(2 + 16 * records.length);
  w.vec16((list) => {
    for (const r of records) list.u16(0).u48(r.epoch).u16(0).u48(r.seq);
  });
  return w.finish();
}

/**
 * Decodes an ACK record's body. Record numbers past 2^48 (no epoch or
 * sequence number of ours reaches them) are a decode error.
 */
export function decodeAck(body: Uint8Array): RecordNumber[] {
  const r = new Reader(body);
  const list = r.vec16("ACK.record_numbers");
  r.end("ACK");
  if (list.remaining % 16 !== 0) throw new DecodeError("ACK.record_numbers", "not whole");
  const records: RecordNumber[] = [];
  while (list.remaining > 0) {
    const epochHigh = list.u16("ACK.epoch");
    const epoch = list.u48("ACK.epoch");
    const seqHigh = list.u16("ACK.sequence_number");
    const seq = list.u48("ACK.sequence_number");
    if (epochHigh !== 0 || seqHigh !== 0 || epoch > MAX_RECORD_NUMBER_PART) {
      throw new DecodeError("ACK.record_number", "past 2^48");
    }
    records.push({ epoch, seq });
  }
  return records;
}

/** The TLS 1.3 form of a handshake message, which the transcript hashes (RFC 9147 §5.2). */
export function transcriptMessage(msgType: number, body: Uint8Array): Uint8Array {
  if (body.length > 0xffffff) throw new RangeError("Cannot frame a handshake message over 2^24");
  const out = new Uint8Array(4 + body.length);
  out[0] = msgType;
  out[1] = body.length >>> 16;
  out[2] = (body.length >>> 8) & 0xff;
  out[3] = body.length & 0xff;
  out.set(body, 4);
  return out;
}

function u16Bytes(v: number): Uint8Array {
  return new Uint8Array([v >>> 8, v & 0xff]);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
