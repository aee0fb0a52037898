/**
 * What a DTLS 1.3 server reads in a ClientHello, and the stateless first
 * step of its handshake (RFC 9147 §5.1): every DTLS 1.3 handshake begins
 * with a HelloRetryRequest whose cookie carries what the server chose (the
 * suite, the group) and the hash of the first ClientHello, so that the
 * server keeps nothing until the client shows, by echoing it, that it
 * receives at its address. The second ClientHello brings it back, and the
 * HelloRetryRequest is rebuilt from it byte for byte for the transcript.
 *
 * @module
 */

import { DecodeError } from "../codec/reader.ts";
import type { GroupName, HashName, SignatureScheme } from "../crypto/provider.ts";
import { type CipherSuite13, suite13ById, SUITES_13 } from "../record/suites13.ts";
import { ProtocolError } from "./errors.ts";
import {
  decodeConnectionId,
  decodeSignatureAlgorithms,
  decodeSupportedGroups,
  ExtensionType,
  findExtension,
  NamedGroup,
  SignatureSchemeCode,
} from "./extensions.ts";
import { AlertDescription, type ClientHello, decodeClientHello } from "./messages.ts";
import {
  decodeClientKeyShares,
  decodeClientSupportedVersions,
  decodeCookieExtension,
  decodeOfferedPsks,
  decodePskModes,
  DTLS_1_3,
  encodeServerHello13,
  ExtensionType13,
  HELLO_RETRY_REQUEST_RANDOM,
  type KeyShareEntry,
  type OfferedPsks,
  PskMode,
} from "./messages13.ts";
import { hashLength } from "./tls13_keys.ts";

/** A ClientHello as a DTLS 1.3 server reads it. */
export interface ClientHello13 {
  readonly hello: ClientHello;
  /** supported_versions, in the client's order. */
  readonly versions: readonly number[];
  readonly keyShares: readonly KeyShareEntry[];
  readonly supportedGroups: readonly number[];
  readonly pskModes: readonly number[];
  readonly psks: OfferedPsks | undefined;
  /** The cookie extension's value, when there is one. */
  readonly cookie: Uint8Array | undefined;
  /** Whether it offers early data (which we never accept). */
  readonly earlyData: boolean;
  /** The Connection ID it wants in the records it receives (RFC 9147 §9), when it offers one. */
  readonly connectionId: Uint8Array | undefined;
  /** signature_algorithms' code points (empty without the extension). */
  readonly signatureSchemes: readonly number[];
}

/** Whether a ClientHello body's supported_versions offers DTLS 1.3; false for anything unreadable. */
export function offersDtls13(body: Uint8Array): boolean {
  try {
    const ext = findExtension(
      decodeClientHello(body).extensions,
      ExtensionType13.SupportedVersions,
    );
    return ext !== undefined && decodeClientSupportedVersions(ext.data).includes(DTLS_1_3);
  } catch {
    return false;
  }
}

/**
 * Reads a ClientHello body for DTLS 1.3. Throws a ProtocolError with the
 * alert RFC 8446 names: decode_error for what does not parse,
 * illegal_parameter for a repeated extension, a pre_shared_key that is not
 * the last one, a legacy cookie or compression other than null;
 * missing_extension for a pre_shared_key without psk_key_exchange_modes.
 */
export function readClientHello13(body: Uint8Array): ClientHello13 {
  let hello: ClientHello;
  try {
    hello = decodeClientHello(body);
  } catch (error) {
    throw decodeFailure(error);
  }
  const seen = new Set<number>();
  for (const e of hello.extensions) {
    if (seen.has(e.type)) {
      throw new ProtocolError(AlertDescription.IllegalParameter, "Repeated ClientHello extension");
    }
    seen.add(e.type);
  }
  if (hello.cookie.length !== 0) {
    throw new ProtocolError(
      AlertDescription.IllegalParameter,
      "DTLS 1.3 ClientHello with a legacy cookie",
    );
  }
  if (hello.compressionMethods.length !== 1 || hello.compressionMethods[0] !== 0) {
    throw new ProtocolError(
      AlertDescription.IllegalParameter,
      "DTLS 1.3 ClientHello with compression",
    );
  }
  const last = hello.extensions[hello.extensions.length - 1];
  const pskExt = findExtension(hello.extensions, ExtensionType13.PreSharedKey);
  if (pskExt !== undefined && last !== pskExt) {
    throw new ProtocolError(
      AlertDescription.IllegalParameter,
      "pre_shared_key is not the last extension",
    );
  }
  // RFC 8446 §9.2: key_share and supported_groups come together.
  const hasShares = findExtension(hello.extensions, ExtensionType13.KeyShare) !== undefined;
  const hasGroups = findExtension(hello.extensions, ExtensionType.SupportedGroups) !== undefined;
  if (hasShares !== hasGroups) {
    throw new ProtocolError(
      AlertDescription.MissingExtension,
      hasShares ? "key_share without supported_groups" : "supported_groups without key_share",
    );
  }
  const modesExt = findExtension(hello.extensions, ExtensionType13.PskKeyExchangeModes);
  if (pskExt !== undefined && modesExt === undefined) {
    throw new ProtocolError(
      AlertDescription.MissingExtension,
      "pre_shared_key without psk_key_exchange_modes",
    );
  }
  try {
    const versionsExt = findExtension(hello.extensions, ExtensionType13.SupportedVersions);
    const sharesExt = findExtension(hello.extensions, ExtensionType13.KeyShare);
    const groupsExt = findExtension(hello.extensions, ExtensionType.SupportedGroups);
    const cookieExt = findExtension(hello.extensions, ExtensionType13.Cookie);
    const cidExt = findExtension(hello.extensions, ExtensionType.ConnectionId);
    const schemesExt = findExtension(hello.extensions, ExtensionType.SignatureAlgorithms);
    return {
      hello,
      versions: versionsExt === undefined ? [] : decodeClientSupportedVersions(versionsExt.data),
      keyShares: sharesExt === undefined ? [] : decodeClientKeyShares(sharesExt.data),
      supportedGroups: groupsExt === undefined ? [] : decodeSupportedGroups(groupsExt.data),
      pskModes: modesExt === undefined ? [] : decodePskModes(modesExt.data),
      psks: pskExt === undefined ? undefined : decodeOfferedPsks(pskExt.data),
      cookie: cookieExt === undefined ? undefined : decodeCookieExtension(cookieExt.data),
      earlyData: findExtension(hello.extensions, ExtensionType13.EarlyData) !== undefined,
      connectionId: cidExt === undefined ? undefined : decodeConnectionId(cidExt.data),
      signatureSchemes: schemesExt === undefined ? [] : decodeSignatureAlgorithms(schemesExt.data),
    };
  } catch (error) {
    throw decodeFailure(error);
  }
}

function decodeFailure(error: unknown): unknown {
  if (error instanceof DecodeError) {
    return new ProtocolError(
      AlertDescription.DecodeError,
      `Cannot decode ClientHello: ${error.message}`,
    );
  }
  return error;
}

/** What the server chose at the first ClientHello, carried in the retry cookie. */
export interface RetryChoice {
  readonly suite: CipherSuite13;
  /** How the server authenticates: an external PSK's binder, or its certificate. */
  readonly auth: "psk" | "certificate";
  /** The (EC)DHE group (psk_dhe_ke, or the certificate's handshake), or undefined for psk_ke. */
  readonly group: GroupName | undefined;
  /** Whether the HelloRetryRequest asks for a key share of `group` (the first hello had none). */
  readonly requestShare: boolean;
}

/** The server's DTLS 1.3 policy, as the hellos need it. */
export interface Hello13Policy {
  /** The suites we accept, in our order of preference. */
  readonly suites: readonly CipherSuite13[];
  /** The groups we accept, in our order of preference. */
  readonly groups: readonly GroupName[];
}

/** The policy of a server that accepts every DTLS 1.3 suite and X25519, P-256, P-384. */
export const DEFAULT_HELLO13_POLICY: Hello13Policy = {
  suites: SUITES_13,
  groups: ["x25519", "secp256r1", "secp384r1"],
};

/**
 * The suite and key exchange for a first ClientHello.
 *
 * With a PSK offered: our first suite the client offers whose hash one of
 * its PSK binders is as long as (a key of the key file serves either hash:
 * the binder says which the client bound it with); psk_dhe_ke with our
 * first group it sent a share of, or else our first group it supports;
 * psk_ke only when it offers nothing else we take.
 *
 * Without one, and when we have a certificate whose key signs a scheme of
 * the client's signature_algorithms (`certificateSchemes`: the schemes it
 * can sign, or undefined for no certificate): our first suite it offers,
 * with (EC)DHE as above.
 *
 * Throws handshake_failure when nothing fits.
 */
export function chooseRetry(
  ch: ClientHello13,
  policy: Hello13Policy,
  certificateSchemes?: readonly SignatureScheme[],
): RetryChoice {
  const psks = ch.psks;
  if (psks === undefined) {
    if (certificateSchemes === undefined) {
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "DTLS 1.3 ClientHello without a PSK",
      );
    }
    if (!certificateSchemes.some((s) => ch.signatureSchemes.includes(SignatureSchemeCode[s]))) {
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "No signature scheme in common for the certificate",
      );
    }
    const suite = policy.suites.find((s) => ch.hello.cipherSuites.includes(s.id));
    if (suite === undefined) {
      throw new ProtocolError(AlertDescription.HandshakeFailure, "No DTLS 1.3 suite in common");
    }
    const dhe = chooseGroup(ch, policy);
    if (dhe === undefined) {
      throw new ProtocolError(AlertDescription.HandshakeFailure, "No group in common");
    }
    return { suite, auth: "certificate", ...dhe };
  }
  const binderLengths = new Set(psks.binders.map((b) => b.length));
  const suite = policy.suites.find((s) =>
    ch.hello.cipherSuites.includes(s.id) && binderLengths.has(hashLength(s.hash))
  );
  if (suite === undefined) {
    throw new ProtocolError(AlertDescription.HandshakeFailure, "No DTLS 1.3 suite in common");
  }
  if (ch.pskModes.includes(PskMode.PskDheKe)) {
    const dhe = chooseGroup(ch, policy);
    if (dhe !== undefined) return { suite, auth: "psk", ...dhe };
  }
  if (ch.pskModes.includes(PskMode.PskKe)) {
    return { suite, auth: "psk", group: undefined, requestShare: false };
  }
  throw new ProtocolError(AlertDescription.HandshakeFailure, "No PSK key exchange mode in common");
}

/** Our first group the client sent a share of, or else our first group it supports. */
function chooseGroup(
  ch: ClientHello13,
  policy: Hello13Policy,
): { group: GroupName; requestShare: boolean } | undefined {
  const shared = policy.groups.find((g) => ch.keyShares.some((k) => k.group === NamedGroup[g]));
  if (shared !== undefined) return { group: shared, requestShare: false };
  const supported = policy.groups.find((g) => ch.supportedGroups.includes(NamedGroup[g]));
  if (supported !== undefined) return { group: supported, requestShare: true };
  return undefined;
}

/** The choice and the first ClientHello's transcript hash, as a retry cookie carries them. */
export interface RetryState extends RetryChoice {
  /** Transcript-Hash(ClientHello1) under the suite's hash. */
  readonly helloHash: Uint8Array;
}

/**
 * The state's bytes: suite(2) || group(2, 0: none) || flags(1: bit 0
 * requestShare, bit 1 certificate) || hash length(1) || hash.
 */
export function encodeRetryState(state: RetryState): Uint8Array {
  const out = new Uint8Array(6 + state.helloHash.length);
  out[0] = state.suite.id >>> 8;
  out[1] = state.suite.id & 0xff;
  const group = state.group === undefined ? 0 : NamedGroup[state.group];
  out[2] = group >>> 8;
  out[3] = group & 0xff;
  out[4] = (state.requestShare ? 1 : 0) | (state.auth === "certificate" ? 2 : 0);
  out[5] = state.helloHash.length;
  out.set(state.helloHash, 6);
  return out;
}

/** The state of a retry cookie that verified (our own bytes: a mismatch is a bug, so undefined). */
export function decodeRetryState(bytes: Uint8Array): RetryState | undefined {
  if (bytes.length < 6) return undefined;
  const suite = suite13ById((bytes[0]! << 8) | bytes[1]!);
  const code = (bytes[2]! << 8) | bytes[3]!;
  const group = code === 0
    ? undefined
    : (Object.keys(NamedGroup) as GroupName[]).find((g) => NamedGroup[g] === code);
  if (suite === undefined || (code !== 0 && group === undefined)) return undefined;
  if (bytes[5] !== hashLength(suite.hash) || bytes.length !== 6 + bytes[5]) return undefined;
  const flags = bytes[4]!;
  const auth = (flags & 2) !== 0 ? "certificate" : "psk";
  if (flags > 3 || (auth === "certificate" && group === undefined)) return undefined;
  return { suite, auth, group, requestShare: (flags & 1) !== 0, helloHash: bytes.slice(6) };
}

/** The body of the HelloRetryRequest for a choice and its cookie. */
export function helloRetryRequestBody(
  sessionId: Uint8Array,
  choice: RetryChoice,
  cookie: Uint8Array,
): Uint8Array {
  return encodeServerHello13({
    random: HELLO_RETRY_REQUEST_RANDOM,
    sessionId,
    cipherSuite: choice.suite.id,
    ...(choice.requestShare && choice.group !== undefined
      ? { keyShare: { group: NamedGroup[choice.group] } }
      : {}),
    cookie,
  });
}

/** The transcript's stand-in for the first ClientHello after a retry (RFC 8446 §4.4.1). */
export function messageHash(hash: HashName, helloHash: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + helloHash.length);
  out[0] = 254;
  out[3] = hashLength(hash);
  out.set(helloHash, 4);
  return out;
}
