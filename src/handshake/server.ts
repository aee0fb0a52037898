/**
 * The server side of the DTLS 1.2 PSK / ECDHE-PSK handshake (RFC 6347 §4.2,
 * RFC 4279, RFC 5489), after the cookie exchange:
 *
 *     ClientHello (with cookie)   -->
 *                                 <--  ServerHello, [ServerKeyExchange], ServerHelloDone
 *     ClientKeyExchange,
 *     [ChangeCipherSpec], Finished -->
 *                                 <--  [ChangeCipherSpec], Finished
 *
 * or, resuming a session by session ID or ticket (RFC 5246 §7.3, RFC 5077):
 *
 *     ClientHello (with cookie)   -->
 *                                 <--  ServerHello, [NewSessionTicket],
 *                                      ChangeCipherSpec, Finished
 *     ChangeCipherSpec, Finished  -->
 *
 * Each state holds only what its step needs; every transition replaces it.
 *
 * @module
 */

import { constantTimeEqual } from "../crypto/constant_time.ts";
import type {
  GroupName,
  KeyShare,
  SignatureScheme,
  SigningKey,
  TranscriptSignature,
} from "../crypto/provider.ts";
import { toHex } from "../codec/hex.ts";
import { VERDICT_ALERTS } from "./driver.ts";
import type {
  CertificateWithKey,
  ChainCheck,
  HandshakeDriver,
  HandshakeHost,
  PeerCertificate,
} from "./driver.ts";
import { DOWNGRADE_SENTINEL_TLS12 } from "./messages13.ts";
import { ProtocolError } from "./errors.ts";
import { DTLS_1_2 } from "../record/header.ts";
import { createProtection } from "../record/protection.ts";
import type { CipherSuite } from "../record/suites.ts";
import { suiteById } from "../record/suites.ts";
import {
  CertificateType,
  decodeCertificateTypes,
  decodeConnectionId,
  decodeEcPointFormats,
  decodeRenegotiationInfo,
  decodeSignatureAlgorithms,
  decodeSupportedGroups,
  encodeConnectionId,
  encodeRenegotiationInfo,
  ExtensionType,
  findExtension,
  hasDuplicateExtensions,
  isEmptyExtension,
  NamedGroup,
  SignatureSchemeCode,
  signatureSchemeOf,
  TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
} from "./extensions.ts";
import { FlightBuilder, type FlightItem } from "./flight.ts";
import {
  clientAuthenticationHolds,
  pskCheck,
  pskSessionRefusal,
  type ResumptionPolicy,
} from "../session/resumption.ts";
import type { Session } from "../session/session.ts";
import { SESSION_ID_LENGTH } from "../session/session_cache.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "./fragments.ts";
import {
  AlertDescription,
  ClientCertificateType,
  type ClientHello,
  decodeCertificate,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEcdheClientKeyExchange,
  decodeEcdhePskClientKeyExchange,
  decodeFinished,
  decodePskClientKeyExchange,
  decodeRawPublicKey,
  encodeCertificate,
  encodeCertificateRequest,
  encodeEcdhePskServerKeyExchange,
  encodeFinished,
  encodeNewSessionTicket,
  encodePskServerKeyExchange,
  encodeRawPublicKey,
  encodeServerEcdhParams,
  encodeServerHello,
  encodeServerHelloDone,
  encodeSignedEcdheServerKeyExchange,
  type Extension,
  HandshakeType,
} from "./messages.ts";
import {
  concat,
  ecdhePskPremaster,
  type KeyBlock,
  keyBlock,
  masterSecret,
  pskPremaster,
  Transcript,
  verifyData,
} from "./keys.ts";

/**
 * The key of an identity: now (undefined: unknown), or later, from a
 * database or a key service. A promise that rejects fails the handshake
 * with internal_error; the connection meanwhile holds up no other peer.
 */
export type PskLookup = Uint8Array | undefined | Promise<Uint8Array | undefined>;

/** The server's certificate: what the certificate suites send and sign with. */
export type ServerCertificate = CertificateWithKey;

/** Where an NSS key log line goes: `<label> <client random> <secret>`. */
export type KeyLog = (clientRandom: Uint8Array, secret: Uint8Array, label?: string) => void;

/** The server's policy: keys, suites, groups, and its certificate if it has one. */
export interface ServerHandshakeOptions {
  /** The key for an identity, or undefined when unknown. */
  readonly lookupPsk: (identity: Uint8Array) => PskLookup;
  /**
   * True when keys come later (an asynchronous store): sessions are then
   * not resumed, since the check of a session's key would wait at its
   * ClientHello.
   */
  readonly pskLookupIsAsynchronous?: () => boolean;
  /** psk_identity_hint (RFC 4279 §2); empty for none. */
  readonly identityHint: Uint8Array;
  /** Suites we accept, in our order of preference. */
  readonly suites: readonly CipherSuite[];
  /** ECDHE groups we accept, in our order of preference. */
  readonly groups: readonly GroupName[];
  /** Longest identity accepted, bytes (RFC 4279 §5.3: at least 128 must work). */
  readonly maxIdentityLength: number;
  /**
   * Length of the random key an unknown identity carries on with (default
   * 32): that of most known keys, so that both cost the same to reject.
   */
  readonly dummyKeyLength?: () => number;
  /**
   * The certificate the ECDHE_ECDSA / ECDHE_RSA suites use, read at each
   * handshake (it may be replaced while the server runs); none: those
   * suites are never chosen.
   */
  readonly certificate?: () => ServerCertificate | undefined;
  /**
   * Given each completed handshake's client random and secrets, for an NSS
   * key log (`--keylog`): a debugging aid that lets Wireshark decrypt
   * sessions. Never set in production. DTLS 1.2 gives its master secret
   * (label `CLIENT_RANDOM`, left out); DTLS 1.3 its four traffic secrets,
   * each with its label.
   */
  readonly keyLog?: KeyLog;
  /**
   * Client authentication on the certificate suites: the check of a
   * client's chain, and whether a client without one is refused (with
   * `handshake_failure`, RFC 5246 §7.4.6) or served anonymously.
   */
  readonly clientAuth?: ClientAuthPolicy | (() => ClientAuthPolicy | undefined);
  /** Session resumption by session ID and by ticket; none: every handshake is a full one. */
  readonly resumption?: ResumptionPolicy | undefined;
  /**
   * A Connection ID for a client that offers the extension (RFC 9146),
   * unique among live connections; none, or undefined returned: none given.
   */
  readonly newConnectionId?: () => Uint8Array | undefined;
  /**
   * Whether this server speaks DTLS 1.3 too: its 1.2 ServerHello.random
   * then ends with the downgrade sentinel (RFC 8446 §4.1.3), which a 1.3
   * client that offered 1.3 refuses, so that no one on the path can push
   * it down to 1.2.
   */
  readonly downgradeSentinel?: boolean;
}

/**
 * What the server takes as a client's proof of identity: an X.509 chain it
 * checks, raw public keys it knows (RFC 7250, SubjectPublicKeyInfo DER), or
 * both; and whether a client without one is refused.
 */
export interface ClientAuthPolicy {
  readonly check?: ChainCheck;
  readonly rawKeys?: readonly Uint8Array[];
  readonly required: boolean;
  /**
   * What identifies this policy (a hash of its CAs, raw keys and
   * `required`): a session a client certificate authenticated resumes
   * only under a policy with the same id. Without one such sessions never
   * resume: the client shows its certificate again.
   */
  readonly id?: Uint8Array;
}

/** What was agreed in the hellos. */
interface Negotiated {
  readonly suite: CipherSuite;
  readonly clientRandom: Uint8Array;
  readonly serverRandom: Uint8Array;
  readonly extendedMasterSecret: boolean;
  readonly encryptThenMac: boolean;
  readonly group: GroupName | undefined;
  readonly keyShare: KeyShare | undefined;
  readonly transcript: Transcript;
  /** The session ID our ServerHello gave, under which the session is cached; empty: none. */
  readonly sessionId: Uint8Array;
  /** Whether our final flight carries a NewSessionTicket (we said so in the ServerHello). */
  readonly issueTicket: boolean;
  /** The Connection IDs agreed (RFC 9146), if any: ours the client sends, theirs we send. */
  readonly connectionIds: ConnectionIds | undefined;
}

/** Connection IDs agreed: `ours` in records we read, `theirs` (maybe empty) in records we send. */
interface ConnectionIds {
  readonly ours: Uint8Array;
  readonly theirs: Uint8Array;
}

/** The client's certificate, once its chain is trusted, until its CertificateVerify checks out. */
interface ClientCertificate {
  readonly spki: Uint8Array;
  readonly subject: string;
  /** When its chain stops being valid, ms (0: a raw public key, which does not). */
  readonly notAfter: number;
  /** The id of the policy that trusted it (empty: none, so its session never resumes). */
  readonly policyId: Uint8Array;
  /** The handshake messages so far, hashed for the CertificateVerify. */
  readonly signature: TranscriptSignature;
}

/** After ClientKeyExchange: the keys exist. */
interface Keyed {
  readonly n: Negotiated;
  readonly nextSeq: number;
  readonly master: Uint8Array;
  readonly identity: string;
  readonly identityBytes: Uint8Array;
  /** The client's certificate, when one authenticated it. */
  readonly peerCertificate?: PeerCertificate;
  /** Until when, and under which policy, the client's certificate holds (for its session). */
  readonly peerValidity?: { readonly notAfter: number; readonly policyId: Uint8Array };
  /** The PSK's check value, kept for the session (PSK suites, when resumption is on). */
  readonly pskCheck?: Uint8Array;
  /** How the session was found, when this is an abbreviated handshake. */
  readonly resumed?: "ticket" | "session_id";
}

/** A session a ClientHello may resume, and how it was found. */
interface Found {
  readonly session: Session;
  readonly suite: CipherSuite;
  readonly kind: "ticket" | "session_id";
}

type ServerState =
  | {
    readonly kind: "await_client_certificate";
    readonly n: Negotiated;
    readonly nextSeq: number;
    readonly signature: TranscriptSignature;
    /** The certificate type agreed for it (RFC 7250). */
    readonly clientType: number;
  }
  | {
    readonly kind: "await_client_key_exchange";
    readonly n: Negotiated;
    readonly nextSeq: number;
    readonly client?: ClientCertificate;
  }
  | {
    /** The ClientKeyExchange is read; its identity's key is being looked up (asynchronously). */
    readonly kind: "await_psk";
    readonly n: Negotiated;
    readonly nextSeq: number;
    readonly identityBytes: Uint8Array;
    /** The ECDHE shared secret (ECDHE-PSK), to go into the premaster secret with the key. */
    readonly other: Uint8Array | undefined;
    /** The client's ChangeCipherSpec came meanwhile: read it once the keys exist. */
    readonly changeCipherSpecSeen: boolean;
  }
  | (Keyed & {
    readonly kind: "await_certificate_verify";
    readonly client: ClientCertificate;
    /** The client's ChangeCipherSpec came first (reordered): read it when this is checked. */
    readonly changeCipherSpecSeen: boolean;
  })
  | (Keyed & { readonly kind: "await_change_cipher_spec" })
  | (Keyed & { readonly kind: "await_finished" })
  | { readonly kind: "done"; readonly clientFinishedSeq: number }
  | { readonly kind: "failed" };

const decoder = new TextDecoder("utf-8", { fatal: false });

/** The first ClientHello that passed the cookie check, as the endpoint saw it. */
export interface VerifiedHello {
  /** Its handshake body. */
  readonly body: Uint8Array;
  /** Its message_seq. */
  readonly messageSeq: number;
}

/** Drives the server half of one handshake. */
export class ServerHandshake implements HandshakeDriver {
  readonly #conn: HandshakeHost;
  readonly #options: ServerHandshakeOptions;
  #state: ServerState;

  /** Held only until start() answers it: an idle connection keeps no ClientHello. */
  #hello: VerifiedHello | undefined;

  constructor(
    conn: HandshakeHost,
    options: ServerHandshakeOptions,
    hello: VerifiedHello,
  ) {
    this.#conn = conn;
    this.#options = options;
    this.#hello = hello;
    conn.inbound.nextSeq = hello.messageSeq + 1;
    this.#state = { kind: "failed" };
  }
  /** Our ServerHello.random: 32 random bytes, the last eight the sentinel when we speak 1.3. */
  #serverRandom(): Uint8Array {
    const random = this.#conn.config.random(32);
    if (this.#options.downgradeSentinel === true) random.set(DOWNGRADE_SENTINEL_TLS12, 24);
    return random;
  }

  /** Answers the verified ClientHello with flight 4 (throws a ProtocolError to refuse it). */
  start(): void {
    const hello = this.#hello;
    if (hello === undefined) throw new Error("Cannot start handshake: already started");
    this.#hello = undefined;
    this.#state = this.#onClientHello(decodeClientHello(hello.body), hello);
  }

  onMessage(msgType: number, messageSeq: number, body: Uint8Array, epoch: number): void {
    const state = this.#state;
    switch (state.kind) {
      case "await_client_certificate":
        if (msgType !== HandshakeType.Certificate || epoch !== 0) break;
        this.#state = this.#onClientCertificate(state, messageSeq, body);
        return;
      case "await_client_key_exchange":
        if (msgType !== HandshakeType.ClientKeyExchange || epoch !== 0) break;
        this.#state = this.#onClientKeyExchange(state, messageSeq, body);
        return;
      case "await_certificate_verify":
        if (msgType !== HandshakeType.CertificateVerify || epoch !== 0) break;
        this.#state = this.#onCertificateVerify(state, messageSeq, body);
        return;
      case "await_psk":
      case "await_change_cipher_spec":
        break;
      case "await_finished":
        if (msgType !== HandshakeType.Finished || epoch !== 1) break;
        this.#state = this.#onFinished(state, messageSeq, body);
        return;
      case "done":
        if (msgType === HandshakeType.ClientHello && epoch > 0) {
          // RFC 5746 §4.4 / our policy: no renegotiation. Refuse politely and
          // forget the message so the association carries on.
          this.#conn.sendWarning(AlertDescription.NoRenegotiation);
          return;
        }
        break;
      case "failed":
        return;
      default:
        return state satisfies never;
    }
    throw new ProtocolError(
      AlertDescription.UnexpectedMessage,
      `Cannot accept handshake message ${msgType} in state ${state.kind}`,
    );
  }

  onChangeCipherSpec(): void {
    const state = this.#state;
    if (state.kind === "await_psk") {
      // Our keys wait for the lookup: the ChangeCipherSpec is taken then.
      if (!state.changeCipherSpecSeen) this.#state = { ...state, changeCipherSpecSeen: true };
      return;
    }
    if (state.kind === "await_certificate_verify") {
      // Before the CertificateVerify: reordered, duplicated or lost on the
      // way, it comes in a later datagram or retransmission and is taken
      // then. Unless the client sent none: see #checkSkippedVerify.
      // Repeats change nothing, and cost nothing: they come unauthenticated.
      if (state.changeCipherSpecSeen) return;
      this.#state = { ...state, changeCipherSpecSeen: true };
      this.#checkSkippedVerify();
      return;
    }
    if (state.kind !== "await_change_cipher_spec") {
      // A ChangeCipherSpec before our keys exist (reordered, or an attack):
      // RFC 6347 §4.1 lets us drop it; the peer will retransmit its flight.
      if (state.kind === "await_client_key_exchange" || state.kind === "await_client_certificate") {
        return;
      }
      // A copy of the one already taken (epoch 0 has no replay window: a
      // duplicated datagram is no reason to fail).
      if (state.kind === "await_finished" || state.kind === "done") return;
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        "Cannot accept ChangeCipherSpec now",
      );
    }
    // The state moves first: activating the epoch replays records of it
    // that arrived early (RFC 6347 §4.1), such as the Finished.
    this.#state = { ...state, kind: "await_finished" };
    this.#conn.activatePendingRead();
  }

  onHeldRecord(): void {
    this.#checkSkippedVerify();
  }

  /**
   * A client that sent its certificate but no CertificateVerify gives its
   * Finished the message_seq the CertificateVerify would have had. Its
   * Finished waits, unread, for the ChangeCipherSpec's epoch; opened with
   * the pending keys it shows that number, and the handshake ends at once
   * with unexpected_message. A CertificateVerify that is only late gives
   * the Finished the next number, and is waited for.
   */
  #checkSkippedVerify(): void {
    const state = this.#state;
    if (state.kind !== "await_certificate_verify" || !state.changeCipherSpecSeen) return;
    const expected = this.#conn.inbound.nextSeq;
    for (const plaintext of this.#conn.peekHeldHandshakes()) {
      let fragments;
      try {
        fragments = parseHandshakeFragments(plaintext);
      } catch {
        continue;
      }
      if (
        fragments.some((f) => f.msgType === HandshakeType.Finished && f.messageSeq === expected)
      ) {
        throw new ProtocolError(
          AlertDescription.UnexpectedMessage,
          "Cannot accept a client certificate without CertificateVerify",
        );
      }
    }
  }

  onPeerRetransmit(messageSeq: number): void {
    const state = this.#state;
    // The client repeated its ClientHello (lost our flight 4) or its final
    // flight (lost our flight 6): send ours again (RFC 6347 §4.2.4).
    if (state.kind === "done") {
      if (messageSeq === state.clientFinishedSeq) this.#conn.resendFlight();
      return;
    }
    if (state.kind === "await_client_key_exchange" || state.kind === "await_client_certificate") {
      this.#conn.resendFlight();
    }
    // Resuming: the client repeated its ClientHello, so it lost our flight.
    if (
      (state.kind === "await_change_cipher_spec" || state.kind === "await_finished") &&
      state.resumed !== undefined
    ) {
      this.#conn.resendFlight();
    }
  }

  // ---- steps -----------------------------------------------------------------

  #onClientHello(ch: ClientHello, hello: VerifiedHello): ServerState {
    const conn = this.#conn;
    // DTLS versions count down: 1.0 = 0xfeff, 1.2 = 0xfefd (RFC 6347 §4.1).
    if (ch.clientVersion > DTLS_1_2) {
      throw new ProtocolError(
        AlertDescription.ProtocolVersion,
        "Cannot negotiate: client offers only DTLS 1.0",
      );
    }
    if (!ch.compressionMethods.includes(0)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot negotiate: no null compression",
      );
    }
    if (hasDuplicateExtensions(ch.extensions)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot decode ClientHello: duplicate extension",
      );
    }
    const exts = ch.extensions;
    const reneg = findExtension(exts, ExtensionType.RenegotiationInfo);
    const secureRenegotiation = reneg !== undefined ||
      ch.cipherSuites.includes(TLS_EMPTY_RENEGOTIATION_INFO_SCSV);
    if (reneg !== undefined && decodeRenegotiationInfo(reneg.data).length !== 0) {
      // RFC 5746 §3.6: an initial handshake must carry an empty renegotiated_connection.
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "Cannot accept renegotiation_info: not empty",
      );
    }
    const ems = findExtension(exts, ExtensionType.ExtendedMasterSecret);
    if (ems !== undefined && !isEmptyExtension(ems)) {
      throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode extended_master_secret");
    }
    const etm = findExtension(exts, ExtensionType.EncryptThenMac);
    if (etm !== undefined && !isEmptyExtension(etm)) {
      throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode encrypt_then_mac");
    }
    const found = this.#findSession(ch, ems !== undefined, etm !== undefined);
    if (found !== undefined) return this.#resume(ch, hello, found, secureRenegotiation);

    const group = this.#pickGroup(exts);
    const signer = this.#pickSigner(exts);
    const suite = this.#pickSuite(ch.cipherSuites, group !== undefined, signer?.certificate.key);
    if (suite === undefined) {
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "Cannot negotiate: no common cipher suite",
      );
    }
    const ecdhe = suite.kx !== "psk";
    const signed = suite.kx === "ecdhe_ecdsa" || suite.kx === "ecdhe_rsa";
    const serverType = signed ? this.#pickServerCertificateType(exts) : undefined;
    const clientType = signed ? this.#pickClientCertificateType(exts) : undefined;
    const encryptThenMac = etm !== undefined && suite.cipher.kind === "cbc";

    const transcript = new Transcript();
    transcript.start(conn.config.provider, suite.prfHash);
    // Client authentication: the messages its CertificateVerify will sign
    // are hashed as they go too (RFC 5246 §7.4.8).
    const signature = clientType === undefined
      ? undefined
      : conn.config.provider.transcriptSignature("verify");
    const record = (message: Uint8Array) => {
      transcript.add(message);
      signature?.update(message);
    };
    record(encodeHandshakeMessage(HandshakeType.ClientHello, hello.messageSeq, hello.body));

    const serverRandom = this.#serverRandom();
    // Only sessions with an extended master secret are resumable (RFC 7627
    // §5.3 asks a server not to resume others). A client that asks for a
    // ticket gets one instead of a session ID: the cache then holds nothing.
    const resumption = ems === undefined ? undefined : this.#options.resumption;
    const issueTicket = resumption?.tickets !== undefined &&
      findExtension(exts, ExtensionType.SessionTicket) !== undefined;
    const sessionId = !issueTicket && resumption?.cache !== undefined &&
        resumption.cache.maxEntries > 0
      ? conn.config.random(SESSION_ID_LENGTH)
      : EMPTY;
    const serverExtensions = helloExtensions(secureRenegotiation, ems !== undefined, issueTicket);
    if (encryptThenMac) serverExtensions.push({ type: ExtensionType.EncryptThenMac, data: EMPTY });
    // RFC 7250 §4.2: the types chosen, in answer to the client's lists.
    if (serverType !== undefined && findExtension(exts, ExtensionType.ServerCertificateType)) {
      serverExtensions.push({
        type: ExtensionType.ServerCertificateType,
        data: new Uint8Array([serverType]),
      });
    }
    if (clientType !== undefined && findExtension(exts, ExtensionType.ClientCertificateType)) {
      serverExtensions.push({
        type: ExtensionType.ClientCertificateType,
        data: new Uint8Array([clientType]),
      });
    }
    const connectionIds = this.#agreeConnectionIds(exts, suite, serverExtensions);
    if (ecdhe && findExtension(exts, ExtensionType.EcPointFormats) !== undefined) {
      // RFC 8422 §5.2: we only send uncompressed points; and only in answer
      // (RFC 5246 §7.4.1.4: a client refuses an extension it did not offer).
      serverExtensions.push({ type: ExtensionType.EcPointFormats, data: new Uint8Array([1, 0]) });
    }

    const flight = new FlightBuilder(hello.messageSeq, record);
    const push = (msgType: number, body: Uint8Array) => flight.add(msgType, body);
    push(
      HandshakeType.ServerHello,
      encodeServerHello({
        serverVersion: DTLS_1_2,
        random: serverRandom,
        sessionId,
        cipherSuite: suite.id,
        compressionMethod: 0,
        extensions: serverExtensions,
      }),
    );
    let keyShare: KeyShare | undefined;
    if (signed) {
      // RFC 8422 §5.4: the certificate, then the ephemeral key signed over
      // both randoms, so that only the certificate's holder could send it.
      const { certificate, scheme } = signer!;
      push(
        HandshakeType.Certificate,
        serverType === CertificateType.RawPublicKey
          ? encodeRawPublicKey(certificate.spki)
          : certificateBody(certificate),
      );
      keyShare = conn.config.provider.keyShare(group!, conn.config.random);
      const params = encodeServerEcdhParams(NamedGroup[group!], keyShare.publicKey);
      push(
        HandshakeType.ServerKeyExchange,
        encodeSignedEcdheServerKeyExchange({
          group: NamedGroup[group!],
          publicKey: keyShare.publicKey,
          scheme: SignatureSchemeCode[scheme],
          signature: certificate.key.sign(scheme, concat(ch.random, serverRandom, params)),
        }),
      );
    } else if (ecdhe) {
      keyShare = conn.config.provider.keyShare(group!, conn.config.random);
      push(
        HandshakeType.ServerKeyExchange,
        encodeEcdhePskServerKeyExchange({
          identityHint: this.#options.identityHint,
          group: NamedGroup[group!],
          publicKey: keyShare.publicKey,
        }),
      );
    } else if (this.#options.identityHint.length > 0) {
      // RFC 4279 §2: without a hint the ServerKeyExchange is omitted.
      push(HandshakeType.ServerKeyExchange, encodePskServerKeyExchange(this.#options.identityHint));
    }
    if (signature !== undefined) {
      push(HandshakeType.CertificateRequest, CERTIFICATE_REQUEST_BODY);
    }
    push(HandshakeType.ServerHelloDone, encodeServerHelloDone());
    // A server's flight 4 waits for the client's next flight; the client's
    // timer drives retransmission, ours covers a lost flight 4 as well.
    conn.sendFlight(flight.items, true);

    const n: Negotiated = {
      suite,
      // Copied: a view would keep the whole ClientHello alive.
      clientRandom: ch.random.slice(),
      serverRandom,
      extendedMasterSecret: ems !== undefined,
      encryptThenMac,
      group: ecdhe ? group : undefined,
      keyShare,
      transcript,
      sessionId,
      issueTicket,
      connectionIds,
    };
    return signature === undefined
      ? { kind: "await_client_key_exchange", nextSeq: flight.nextSeq, n }
      : {
        kind: "await_client_certificate",
        nextSeq: flight.nextSeq,
        n,
        signature,
        clientType: clientType!,
      };
  }

  /**
   * The client's chain, asked for by our CertificateRequest: trusted, or
   * the handshake fails with the check's alert; an empty one is refused
   * unless client authentication is optional (RFC 5246 §7.4.6).
   */
  #onClientCertificate(
    state: Extract<ServerState, { kind: "await_client_certificate" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ServerState {
    // The policy now: it may have been replaced (a reload) since we asked.
    const clientAuth = this.#clientAuth();
    if (clientAuth === undefined) {
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "Cannot check the client certificate: client authentication was turned off",
      );
    }
    const raw = state.clientType === CertificateType.RawPublicKey;
    const chain = raw ? [decodeRawPublicKey(body)] : decodeCertificate(body);
    const message = encodeHandshakeMessage(HandshakeType.Certificate, messageSeq, body);
    state.n.transcript.add(message);
    state.signature.update(message);
    const { n, nextSeq, signature } = state;
    if (chain.length === 0) {
      if (clientAuth.required) {
        throw new ProtocolError(
          AlertDescription.HandshakeFailure,
          "Cannot continue: the client sent no certificate",
        );
      }
      return { kind: "await_client_key_exchange", n, nextSeq };
    }
    if (raw) {
      // RFC 7250: the key itself is the identity, trusted when it is one we know.
      const spki = chain[0]!;
      if (!(clientAuth.rawKeys ?? []).some((k) => constantTimeEqual(k, spki))) {
        throw new ProtocolError(
          AlertDescription.BadCertificate,
          "Cannot trust client raw public key: not one of --client-keys",
        );
      }
      return {
        kind: "await_client_key_exchange",
        n,
        nextSeq,
        client: {
          spki: spki.slice(),
          subject: "raw public key",
          notAfter: 0,
          policyId: clientAuth.id ?? EMPTY,
          signature,
        },
      };
    }
    const verdict = clientAuth.check!(chain, this.#conn.now);
    if (!verdict.ok) {
      throw new ProtocolError(
        VERDICT_ALERTS[verdict.alert],
        `Cannot trust client certificate: ${verdict.reason}`,
      );
    }
    return {
      kind: "await_client_key_exchange",
      n,
      nextSeq,
      client: {
        spki: verdict.spki,
        subject: verdict.subject,
        notAfter: verdict.notAfter,
        policyId: clientAuth.id ?? EMPTY,
        signature,
      },
    };
  }

  /**
   * The client's proof that it holds its certificate's key: a signature of
   * every message up to its ClientKeyExchange, with a scheme we asked for
   * that fits the key (RFC 5246 §7.4.8).
   */
  #onCertificateVerify(
    state: Extract<ServerState, { kind: "await_certificate_verify" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ServerState {
    const cv = decodeCertificateVerify(body);
    const scheme = signatureSchemeOf(cv.scheme);
    if (
      scheme === undefined ||
      !state.client.signature.verify(state.client.spki, scheme, cv.signature)
    ) {
      throw new ProtocolError(
        AlertDescription.DecryptError,
        "Cannot verify the client's CertificateVerify",
      );
    }
    state.n.transcript.add(
      encodeHandshakeMessage(HandshakeType.CertificateVerify, messageSeq, body),
    );
    const provider = this.#conn.config.provider;
    const keyed: Keyed = {
      n: state.n,
      nextSeq: state.nextSeq,
      master: state.master,
      identity: state.identity,
      identityBytes: state.identityBytes,
      ...(state.pskCheck === undefined ? {} : { pskCheck: state.pskCheck }),
      peerCertificate: {
        subject: state.client.subject,
        spkiSha256: toHex(provider.hash("sha256", state.client.spki)),
      },
      peerValidity: { notAfter: state.client.notAfter, policyId: state.client.policyId },
    };
    if (!state.changeCipherSpecSeen) return { ...keyed, kind: "await_change_cipher_spec" };
    // Its ChangeCipherSpec came first: taken now, as onChangeCipherSpec would.
    this.#state = { ...keyed, kind: "await_finished" };
    this.#conn.activatePendingRead();
    return this.#state;
  }

  /**
   * The session this ClientHello may resume: its ticket's (RFC 5077 §3.4),
   * else its session ID's. A ticket that cannot be resumed is reported and
   * a full handshake follows; so does a session that no longer fits.
   */
  #findSession(ch: ClientHello, ems: boolean, etm: boolean): Found | undefined {
    const policy = this.#options.resumption;
    if (policy === undefined) return undefined;
    const now = this.#conn.now;
    const ticket = findExtension(ch.extensions, ExtensionType.SessionTicket);
    let session: Session | undefined;
    let kind: Found["kind"] = "session_id";
    if (ticket !== undefined && ticket.data.length > 0 && policy.tickets !== undefined) {
      const opened = policy.tickets.open(ticket.data, now);
      if ("refused" in opened) {
        this.#conn.emit({ type: "ticket_refused", reason: opened.refused });
        return undefined;
      }
      session = opened.session;
      kind = "ticket";
    } else if (ch.sessionId.length > 0 && policy.cache !== undefined) {
      session = policy.cache.get(ch.sessionId, now);
      kind = "session_id";
    }
    if (session === undefined) return undefined;
    if (session.extendedMasterSecret && !ems) {
      // RFC 7627 §5.3: the abbreviated handshake MUST be aborted.
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "Cannot resume: the session has an extended master secret, the ClientHello no extension",
      );
    }
    const refusal = this.#unresumable(session, ch, etm);
    if (refusal === undefined) {
      return { session, suite: suiteById(session.suiteId)!, kind };
    }
    if (kind === "ticket") this.#conn.emit({ type: "ticket_refused", reason: refusal });
    // A session whose key is gone is gone. One that does not fit this
    // ClientHello stays: anyone who saw its ID (sent in the clear) could
    // otherwise evict it.
    else if (refusal === "identity_unknown") policy.cache!.delete(ch.sessionId);
    return undefined;
  }

  /** Why `session` cannot be resumed by this ClientHello now, or undefined when it can. */
  #unresumable(
    session: Session,
    ch: ClientHello,
    etm: boolean,
  ): "identity_unknown" | "mismatch" | undefined {
    const suite = this.#options.suites.find((s) => s.id === session.suiteId);
    if (
      suite === undefined || !ch.cipherSuites.includes(suite.id) || !session.extendedMasterSecret
    ) {
      return "mismatch";
    }
    // RFC 7366 §3.1: a resumption keeps encrypt_then_mac as it was.
    if (suite.cipher.kind === "cbc" && etm !== session.encryptThenMac) return "mismatch";
    const certificateSuite = suite.kx === "ecdhe_ecdsa" || suite.kx === "ecdhe_rsa";
    if (certificateSuite) {
      if (session.identityBytes.length !== 0) return "mismatch";
      // Only where the certificate it was made with is still served.
      const certificate = this.#options.certificate?.();
      if (
        certificate === undefined ||
        certificate.key.type !== (suite.kx === "ecdhe_ecdsa" ? "ec" : "rsa") ||
        !constantTimeEqual(
          this.#conn.config.provider.hash("sha256", certificate.spki),
          session.serverSpkiSha256,
        )
      ) {
        return "mismatch";
      }
      // A CA or key taken out of the policy ends its sessions.
      return clientAuthenticationHolds(session, this.#clientAuth(), this.#conn.now)
        ? undefined
        : "mismatch";
    }
    if (session.identityBytes.length > this.#options.maxIdentityLength) return "mismatch";
    return pskSessionRefusal(
      session,
      this.#options.lookupPsk,
      this.#options.pskLookupIsAsynchronous?.() === true,
      this.#conn.config.provider,
    );
  }

  /**
   * The abbreviated handshake (RFC 5246 §7.3): keys from the session's
   * master secret and the new randoms, and our Finished first. A ticket is
   * renewed under today's ticket key, its lifetime unchanged, so that keys
   * can rotate away under clients that only ever resume.
   */
  #resume(
    ch: ClientHello,
    hello: VerifiedHello,
    found: Found,
    secureRenegotiation: boolean,
  ): ServerState {
    const conn = this.#conn;
    const provider = conn.config.provider;
    const { session, suite, kind } = found;
    const tickets = this.#options.resumption?.tickets;
    const renew = kind === "ticket" && tickets !== undefined;
    const encryptThenMac = suite.cipher.kind === "cbc" && session.encryptThenMac;
    const transcript = new Transcript();
    transcript.start(provider, suite.prfHash);
    transcript.add(encodeHandshakeMessage(HandshakeType.ClientHello, hello.messageSeq, hello.body));

    const serverRandom = this.#serverRandom();
    const extensions = helloExtensions(secureRenegotiation, true, renew);
    if (encryptThenMac) extensions.push({ type: ExtensionType.EncryptThenMac, data: EMPTY });
    const connectionIds = this.#agreeConnectionIds(ch.extensions, suite, extensions);
    const flight = new FlightBuilder(hello.messageSeq, (message) => transcript.add(message));
    const push = (msgType: number, body: Uint8Array, epoch: number) =>
      flight.add(msgType, body, epoch);
    push(
      HandshakeType.ServerHello,
      encodeServerHello({
        serverVersion: DTLS_1_2,
        random: serverRandom,
        // RFC 5077 §3.4 / RFC 5246 §7.4.1.3: the client's session ID, echoed, says "resumed".
        sessionId: ch.sessionId.slice(),
        cipherSuite: suite.id,
        compressionMethod: 0,
        extensions,
      }),
      0,
    );
    if (renew) push(HandshakeType.NewSessionTicket, this.#newSessionTicket(session), 0);
    const master = session.masterSecret.slice();
    const clientRandom = ch.random.slice();
    this.#installKeys(
      suite,
      keyBlock(provider, suite, master, clientRandom, serverRandom),
      encryptThenMac,
      connectionIds,
    );
    const ours = this.#verifyData(suite, master, "server", transcript);
    flight.changeCipherSpec();
    push(HandshakeType.Finished, encodeFinished(ours), 1);
    // Our flight is answered by the client's final one: resent until then.
    conn.sendFlight(flight.items, true);
    return {
      kind: "await_change_cipher_spec",
      n: {
        suite,
        clientRandom,
        serverRandom,
        extendedMasterSecret: true,
        encryptThenMac,
        group: undefined,
        keyShare: undefined,
        transcript,
        sessionId: EMPTY,
        issueTicket: false,
        connectionIds,
      },
      nextSeq: flight.nextSeq,
      master,
      identity: decoder.decode(session.identityBytes),
      identityBytes: session.identityBytes,
      ...(session.peerCertificate === undefined ? {} : {
        peerCertificate: {
          subject: session.peerCertificate.subject,
          spkiSha256: session.peerCertificate.spkiSha256,
        },
      }),
      resumed: kind,
    };
  }

  /**
   * RFC 9146 §3: when the client offers connection_id and we have a CID to
   * give, we answer with ours; records then carry ours to us and, when the
   * client gave a non-empty one, its own to it. AEAD suites only (the
   * server may decline, by not answering).
   */
  #agreeConnectionIds(
    exts: readonly Extension[],
    suite: CipherSuite,
    answer: Extension[],
  ): ConnectionIds | undefined {
    const ext = findExtension(exts, ExtensionType.ConnectionId);
    const newConnectionId = this.#options.newConnectionId;
    if (ext === undefined || newConnectionId === undefined || suite.cipher.kind === "cbc") {
      return undefined;
    }
    const theirs = decodeConnectionId(ext.data).slice();
    // Every record we send carries the client's CID: a long one would make
    // each answer bigger than what asked for it (up to 255 bytes), and may
    // not fit a small MTU. Declined, as a server may.
    if (theirs.length > MAX_PEER_CID_LENGTH) return undefined;
    const ours = newConnectionId();
    if (ours === undefined) return undefined;
    answer.push({ type: ExtensionType.ConnectionId, data: encodeConnectionId(ours) });
    this.#conn.useConnectionId(ours);
    return { ours, theirs };
  }

  /**
   * Epoch 1's keys both ways: the client's for reading once its
   * ChangeCipherSpec comes, ours for writing; with the Connection IDs
   * agreed (ours in what we read, the client's in what we send).
   */
  #installKeys(
    suite: CipherSuite,
    keys: KeyBlock,
    encryptThenMac: boolean,
    connectionIds: ConnectionIds | undefined,
  ): void {
    const conn = this.#conn;
    const provider = conn.config.provider;
    const options = { encryptThenMac, random: conn.config.random };
    conn.setPendingRead(
      createProtection(suite, keys.client, provider, {
        ...options,
        connectionId: connectionIds?.ours,
      }),
    );
    conn.setWrite(
      1,
      createProtection(suite, keys.server, provider, {
        ...options,
        connectionId: connectionIds?.theirs,
      }),
    );
  }

  /** A Finished's verify_data: over the transcript so far, from `role`'s side (RFC 5246 §7.4.9). */
  #verifyData(
    suite: CipherSuite,
    master: Uint8Array,
    role: "client" | "server",
    transcript: Transcript,
  ): Uint8Array {
    const provider = this.#conn.config.provider;
    return verifyData(
      provider,
      suite.prfHash,
      master,
      role,
      transcript.hash(provider, suite.prfHash),
    );
  }

  /** A NewSessionTicket body for `session`; its hint is the lifetime left, seconds. */
  #newSessionTicket(session: Session): Uint8Array {
    const tickets = this.#options.resumption!.tickets!;
    const left = session.issuedAt + tickets.lifetimeMs - this.#conn.now;
    let ticket: Uint8Array;
    try {
      ticket = tickets.seal(session);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      // RFC 5077 §3.3: having promised a ticket, send an empty one. (A
      // session too big to seal: a very long certificate subject.)
      return encodeNewSessionTicket({ lifetimeHint: 0, ticket: EMPTY });
    }
    return encodeNewSessionTicket({
      lifetimeHint: Math.min(0xffffffff, Math.max(0, Math.floor(left / 1000))),
      ticket,
    });
  }

  /** The session a full handshake leaves to resume, once it completed. */
  #sessionOf(state: Keyed): Session {
    const kx = state.n.suite.kx;
    const certificate = kx === "ecdhe_ecdsa" || kx === "ecdhe_rsa"
      ? this.#options.certificate?.()
      : undefined;
    const peer = state.peerCertificate;
    const validity = state.peerValidity;
    return {
      issuedAt: this.#conn.now,
      suiteId: state.n.suite.id,
      masterSecret: state.master.slice(),
      extendedMasterSecret: state.n.extendedMasterSecret,
      encryptThenMac: state.n.encryptThenMac,
      identityBytes: state.identityBytes,
      pskCheck: state.pskCheck ?? EMPTY,
      serverSpkiSha256: certificate === undefined
        ? EMPTY
        : this.#conn.config.provider.hash("sha256", certificate.spki),
      ...(peer === undefined || validity === undefined ? {} : {
        peerCertificate: {
          subject: peer.subject,
          spkiSha256: peer.spkiSha256,
          notAfter: validity.notAfter,
          policyId: validity.policyId,
        },
      }),
    };
  }

  #pickGroup(exts: readonly Extension[]): GroupName | undefined {
    const formats = findExtension(exts, ExtensionType.EcPointFormats);
    // RFC 8422 §5.1.2: uncompressed (0) must be supported; if it is not listed we cannot talk ECDHE.
    if (formats !== undefined && !decodeEcPointFormats(formats.data).includes(0)) return undefined;
    const groupsExt = findExtension(exts, ExtensionType.SupportedGroups);
    if (groupsExt === undefined) {
      // RFC 8422 §4: without the extension any curve may be used; P-256 is the safe choice.
      return this.#options.groups.includes("secp256r1") ? "secp256r1" : this.#options.groups[0];
    }
    const offered = decodeSupportedGroups(groupsExt.data);
    return this.#options.groups.find((g) => offered.includes(NamedGroup[g]));
  }

  /**
   * Our certificate and the scheme to sign with, when we have one and the
   * client can check its signatures: a scheme of our key that its
   * signature_algorithms lists. Without the extension a TLS 1.2 client
   * takes SHA-1 signatures only (RFC 5246 §7.4.1.4.1), which we never make.
   * An ECDSA key's curve must also be one the client supports, when it
   * says which (RFC 8422 §5.1).
   */
  #pickSigner(
    exts: readonly Extension[],
  ): { certificate: ServerCertificate; scheme: SignatureScheme } | undefined {
    const certificate = this.#options.certificate?.();
    const algorithms = findExtension(exts, ExtensionType.SignatureAlgorithms);
    if (certificate === undefined || algorithms === undefined) return undefined;
    const offered = decodeSignatureAlgorithms(algorithms.data);
    const scheme = certificate.key.schemes.find((s) => offered.includes(SignatureSchemeCode[s]));
    if (scheme === undefined) return undefined;
    const curve = certificate.key.curve;
    const groupsExt = findExtension(exts, ExtensionType.SupportedGroups);
    if (
      curve !== undefined && groupsExt !== undefined &&
      !decodeSupportedGroups(groupsExt.data).includes(NamedGroup[curve])
    ) {
      return undefined;
    }
    return { certificate, scheme };
  }

  /**
   * The type of certificate we send (RFC 7250 §4.2): the first of the
   * client's server_certificate_type list we can send (we can send both:
   * the chain, or its leaf's key), X.509 without the extension; none of
   * them is unsupported_certificate.
   */
  #pickServerCertificateType(exts: readonly Extension[]): number {
    const ext = findExtension(exts, ExtensionType.ServerCertificateType);
    if (ext === undefined) return CertificateType.X509;
    const type = decodeCertificateTypes(ext.data).find((t) =>
      t === CertificateType.X509 || t === CertificateType.RawPublicKey
    );
    if (type === undefined) {
      throw new ProtocolError(
        AlertDescription.UnsupportedCertificate,
        "Cannot send a certificate of a type the client takes",
      );
    }
    return type;
  }

  /**
   * The type of certificate we ask the client for, when we ask: the first
   * of its client_certificate_type list we can check (a raw key with known
   * keys, a chain with a CA bundle), X.509 without the extension.
   * Undefined: no CertificateRequest (no client authentication, or the
   * client can offer nothing we check and may stay anonymous).
   */
  #pickClientCertificateType(exts: readonly Extension[]): number | undefined {
    const auth = this.#clientAuth();
    if (auth === undefined) return undefined;
    const ext = findExtension(exts, ExtensionType.ClientCertificateType);
    const offered = ext === undefined ? [CertificateType.X509] : decodeCertificateTypes(ext.data);
    const type = offered.find((t) =>
      (t === CertificateType.RawPublicKey && auth.rawKeys !== undefined) ||
      (t === CertificateType.X509 && auth.check !== undefined)
    );
    if (type === undefined && auth.required) {
      throw new ProtocolError(
        AlertDescription.UnsupportedCertificate,
        "Cannot authenticate the client: it offers no certificate type we check",
      );
    }
    return type;
  }

  /** The client authentication policy in force now (it may be replaced while the server runs). */
  #clientAuth(): ClientAuthPolicy | undefined {
    const policy = this.#options.clientAuth;
    return typeof policy === "function" ? policy() : policy;
  }

  #pickSuite(
    offered: readonly number[],
    haveGroup: boolean,
    key: SigningKey | undefined,
  ): CipherSuite | undefined {
    for (const suite of this.#options.suites) {
      if (suite.kx !== "psk" && !haveGroup) continue;
      if (suite.kx === "ecdhe_ecdsa" && key?.type !== "ec") continue;
      if (suite.kx === "ecdhe_rsa" && key?.type !== "rsa") continue;
      if (offered.includes(suite.id) && suiteById(suite.id) !== undefined) return suite;
    }
    return undefined;
  }

  #onClientKeyExchange(
    state: Extract<ServerState, { kind: "await_client_key_exchange" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ServerState {
    const conn = this.#conn;
    conn.disarmTimer();
    const { n } = state;
    if (n.suite.kx === "ecdhe_ecdsa" || n.suite.kx === "ecdhe_rsa") {
      return this.#onCertificateKeyExchange(state, messageSeq, body);
    }
    let identityBytes: Uint8Array;
    let other: Uint8Array | undefined;
    if (n.suite.kx === "ecdhe_psk") {
      const cke = decodeEcdhePskClientKeyExchange(body);
      identityBytes = cke.identity;
      const shared = n.keyShare!.sharedSecret(cke.publicKey);
      if (shared === null) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "Cannot use client's ECDH public key",
        );
      }
      other = shared;
    } else {
      identityBytes = decodePskClientKeyExchange(body).identity;
    }
    if (identityBytes.length > this.#options.maxIdentityLength) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot accept PSK identity: too long",
      );
    }
    n.transcript.add(encodeHandshakeMessage(HandshakeType.ClientKeyExchange, messageSeq, body));
    const lookup: unknown = this.#options.lookupPsk(identityBytes);
    if (typeof (lookup as { then?: unknown } | null)?.then === "function") {
      // The owner awaits it (with its timeout and bound) and brings the
      // answer back through onPskLookup; nothing else waits meanwhile.
      conn.emit({
        type: "psk_lookup",
        lookup: Promise.resolve(lookup as PromiseLike<Uint8Array | undefined>),
      });
      return {
        kind: "await_psk",
        n,
        nextSeq: state.nextSeq,
        identityBytes: identityBytes.slice(),
        other,
        changeCipherSpecSeen: false,
      };
    }
    return this.#withKey(state, identityBytes.slice(), other, keyOf(lookup));
  }

  onPskLookup(result: Uint8Array | undefined | Error): void {
    const state = this.#state;
    if (state.kind !== "await_psk") return;
    if (result instanceof Error) {
      this.#state = { kind: "failed" };
      throw new ProtocolError(
        AlertDescription.InternalError,
        `Cannot look up the key of the PSK identity: ${result.message}`,
      );
    }
    this.#state = this.#withKey(state, state.identityBytes, state.other, keyOf(result));
    if (state.changeCipherSpecSeen && this.#state.kind === "await_change_cipher_spec") {
      // Its ChangeCipherSpec came while we waited: taken now, as onChangeCipherSpec would.
      this.#state = { ...this.#state, kind: "await_finished" };
      this.#conn.activatePendingRead();
    }
  }

  /** The key schedule, once the identity's key is known (or known to be unknown). */
  #withKey(
    state: { readonly n: Negotiated; readonly nextSeq: number },
    identityBytes: Uint8Array,
    other: Uint8Array | undefined,
    known: Uint8Array | undefined,
  ): ServerState {
    const conn = this.#conn;
    const identity = decoder.decode(identityBytes);
    conn.emit({ type: "psk_identity", identity, identityBytes, known: known !== undefined });
    // RFC 4279 §5: an unknown identity may be refused at once, or carried
    // on with a random key so that it fails where a wrong key does, at the
    // client's Finished (bad_record_mac). The second tells an attacker
    // nothing about which identities exist, on the wire or in time.
    const psk = known ?? conn.config.random(this.#options.dummyKeyLength?.() ?? DUMMY_PSK_LENGTH);
    const check = this.#options.resumption === undefined || known === undefined
      ? undefined
      : pskCheck(conn.config.provider, known);
    const premaster = other === undefined ? pskPremaster(psk) : ecdhePskPremaster(other, psk);
    return this.#keyed(
      { kind: "await_client_key_exchange", n: state.n, nextSeq: state.nextSeq },
      premaster,
      identity,
      identityBytes,
      check,
    );
  }

  /**
   * The ClientKeyExchange of a certificate suite: the client's ephemeral
   * point, whose shared secret with ours is the premaster secret (RFC 8422
   * §5.10: the x-coordinate; X25519's output, RFC 8422 §5.11).
   */
  #onCertificateKeyExchange(
    state: Extract<ServerState, { kind: "await_client_key_exchange" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ServerState {
    const { n } = state;
    const { publicKey } = decodeEcdheClientKeyExchange(body);
    const shared = n.keyShare!.sharedSecret(publicKey);
    if (shared === null) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot use client's ECDH public key",
      );
    }
    const message = encodeHandshakeMessage(HandshakeType.ClientKeyExchange, messageSeq, body);
    n.transcript.add(message);
    state.client?.signature.update(message);
    return this.#keyed(state, shared, "", EMPTY);
  }

  /** From the premaster secret (wiped here): the master secret, and both directions' keys. */
  #keyed(
    state: Extract<ServerState, { kind: "await_client_key_exchange" }>,
    premaster: Uint8Array,
    identity: string,
    identityBytes: Uint8Array,
    check?: Uint8Array,
  ): ServerState {
    const conn = this.#conn;
    const { n } = state;
    const provider = conn.config.provider;
    const master = masterSecret(
      provider,
      n.suite.prfHash,
      premaster,
      n.extendedMasterSecret
        ? { extended: true, sessionHash: n.transcript.hash(provider, n.suite.prfHash) }
        : { extended: false, clientRandom: n.clientRandom, serverRandom: n.serverRandom },
    );
    premaster.fill(0);
    this.#installKeys(
      n.suite,
      keyBlock(provider, n.suite, master, n.clientRandom, n.serverRandom),
      n.encryptThenMac,
      n.connectionIds,
    );
    const keyed: Keyed = {
      n,
      nextSeq: state.nextSeq,
      master,
      identity,
      identityBytes,
      ...(check === undefined ? {} : { pskCheck: check }),
    };
    return state.client === undefined ? { ...keyed, kind: "await_change_cipher_spec" } : {
      ...keyed,
      kind: "await_certificate_verify",
      client: state.client,
      changeCipherSpecSeen: false,
    };
  }

  #onFinished(
    state: Extract<ServerState, { kind: "await_finished" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ServerState {
    const conn = this.#conn;
    const { n, master } = state;
    const expected = this.#verifyData(n.suite, master, "client", n.transcript);
    if (!constantTimeEqual(expected, decodeFinished(body))) {
      throw new ProtocolError(AlertDescription.DecryptError, "Cannot verify client Finished");
    }
    if (state.resumed !== undefined) {
      // Abbreviated: our Finished went first; the client's answers it.
      conn.disarmTimer();
    } else {
      n.transcript.add(encodeHandshakeMessage(HandshakeType.Finished, messageSeq, body));
      this.#sendFinalFlight(state);
    }
    // Only a handshake that completed is in the key log: no peer can grow
    // it by failing handshakes.
    this.#options.keyLog?.(n.clientRandom, master);
    master.fill(0);
    conn.established();
    conn.emit({
      ...(state.resumed === undefined ? {} : { resumed: state.resumed }),
      type: "handshake_complete",
      suite: n.suite.name,
      version: "DTLS 1.2",
      identity: state.identity,
      identityBytes: state.identityBytes,
      extendedMasterSecret: n.extendedMasterSecret,
      encryptThenMac: n.encryptThenMac,
      group: n.group,
      ...(state.peerCertificate === undefined ? {} : { peerCertificate: state.peerCertificate }),
    });
    // A resumed client's Finished ends its final flight: a copy of it asks for nothing.
    return { kind: "done", clientFinishedSeq: state.resumed === undefined ? messageSeq : -1 };
  }

  /**
   * A full handshake's last flight: [NewSessionTicket], ChangeCipherSpec,
   * Finished. It has no timer: it is resent when the client repeats its own
   * final flight (RFC 6347 §4.2.4, Figure 2). The session is cached or
   * sealed into the ticket here, once the client has proved its keys.
   */
  #sendFinalFlight(state: Extract<ServerState, { kind: "await_finished" }>): void {
    const conn = this.#conn;
    const { n, master } = state;
    let seq = state.nextSeq;
    let ticket: FlightItem | undefined;
    if (n.issueTicket) {
      const body = this.#newSessionTicket(this.#sessionOf(state));
      ticket = {
        kind: "handshake",
        epoch: 0,
        msgType: HandshakeType.NewSessionTicket,
        messageSeq: seq,
        body,
      };
      n.transcript.add(encodeHandshakeMessage(HandshakeType.NewSessionTicket, seq, body));
      seq++;
    } else if (n.sessionId.length > 0) {
      this.#options.resumption?.cache?.set(n.sessionId, this.#sessionOf(state), conn.now);
    }
    const ours = this.#verifyData(n.suite, master, "server", n.transcript);
    const changeCipherSpec: FlightItem = { kind: "change_cipher_spec", epoch: 0 };
    const finished: FlightItem = {
      kind: "handshake",
      epoch: 1,
      msgType: HandshakeType.Finished,
      messageSeq: seq,
      body: encodeFinished(ours),
    };
    // Kept for the client's repeats for the connection's life: an array
    // literal, sized as it is (one grown by push keeps spare slots).
    conn.sendFlight(
      ticket === undefined ? [changeCipherSpec, finished] : [ticket, changeCipherSpec, finished],
      false,
    );
  }
}

/** The ServerHello extensions every handshake may answer with. */
function helloExtensions(
  secureRenegotiation: boolean,
  extendedMasterSecret: boolean,
  sessionTicket: boolean,
): Extension[] {
  const extensions: Extension[] = [];
  if (secureRenegotiation) {
    extensions.push({
      type: ExtensionType.RenegotiationInfo,
      data: encodeRenegotiationInfo(EMPTY),
    });
  }
  if (extendedMasterSecret) {
    extensions.push({ type: ExtensionType.ExtendedMasterSecret, data: EMPTY });
  }
  // RFC 5077 §3.2: empty, to say a NewSessionTicket will come.
  if (sessionTicket) extensions.push({ type: ExtensionType.SessionTicket, data: EMPTY });
  return extensions;
}

const EMPTY = new Uint8Array(0);

/**
 * Our CertificateRequest: ECDSA or RSA keys, every scheme we verify, and no
 * list of CAs (any: the client sends what it has, its chain decides).
 */
const CERTIFICATE_REQUEST_BODY = encodeCertificateRequest({
  certificateTypes: [ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign],
  schemes: Object.values(SignatureSchemeCode),
  authorities: [],
});

/** Each certificate's Certificate message body, encoded once and shared by every handshake. */
const CERTIFICATE_BODIES = new WeakMap<ServerCertificate, Uint8Array>();

function certificateBody(certificate: ServerCertificate): Uint8Array {
  let body = CERTIFICATE_BODIES.get(certificate);
  if (body === undefined) {
    body = encodeCertificate(certificate.chain);
    CERTIFICATE_BODIES.set(certificate, body);
  }
  return body;
}

/** The longest Connection ID a client may ask us to put in our records, bytes. */
export const MAX_PEER_CID_LENGTH = 32;

/**
 * A key store's answer as a key, or undefined for an unknown identity (null
 * too). Anything else, an empty key among it, is the store's failure: the
 * handshake ends with internal_error rather than take it.
 */
function keyOf(answer: unknown): Uint8Array | undefined {
  if (answer === undefined || answer === null) return undefined;
  if (answer instanceof Uint8Array && answer.length > 0 && answer.length <= 0xffff) return answer;
  throw new ProtocolError(
    AlertDescription.InternalError,
    "Cannot use the key store's answer: not a key of 1 to 65535 bytes",
  );
}

/** Bytes of the random key an unknown identity carries on with. */
const DUMMY_PSK_LENGTH = 32;
