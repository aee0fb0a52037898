/**
 * The client side of the DTLS 1.2 handshake (PSK, ECDHE-PSK, and ECDHE
 * signed by the server's certificate), used by the tests, the load tool and
 * the client command:
 *
 *     ClientHello                 -->
 *                                 <--  HelloVerifyRequest
 *     ClientHello (with cookie)   -->
 *                                 <--  ServerHello, [Certificate], [ServerKeyExchange], ServerHelloDone
 *     ClientKeyExchange, ChangeCipherSpec, Finished -->
 *                                 <--  [NewSessionTicket], ChangeCipherSpec, Finished
 *
 * or, resuming a session it kept (by session ID or ticket):
 *
 *     ClientHello (with cookie)   -->
 *                                 <--  ServerHello, [NewSessionTicket],
 *                                      ChangeCipherSpec, Finished
 *     ChangeCipherSpec, Finished  -->
 *
 * @module
 */

import { constantTimeEqual } from "../crypto/constant_time.ts";
import type {
  GroupName,
  KeyShare,
  SignatureScheme,
  TranscriptSignature,
} from "../crypto/provider.ts";
import type {
  CertificateVerdict,
  CertificateWithKey,
  HandshakeDriver,
  HandshakeHost,
  SavedSession,
} from "./driver.ts";
import { VERDICT_ALERTS } from "./driver.ts";
import { ProtocolError } from "./errors.ts";
import { DTLS_1_0, DTLS_1_2 } from "../record/header.ts";
import { createProtection } from "../record/protection.ts";
import { type CipherSuite, suiteById } from "../record/suites.ts";
import {
  CertificateType,
  decodeCertificateTypeChoice,
  decodeConnectionId,
  encodeCertificateTypes,
  encodeConnectionId,
  encodeEcPointFormats,
  encodeRenegotiationInfo,
  encodeSignatureAlgorithms,
  encodeSupportedGroups,
  ExtensionType,
  findExtension,
  hasDuplicateExtensions,
  NamedGroup,
  SignatureSchemeCode,
  signatureSchemeOf,
} from "./extensions.ts";
import type { FlightItem } from "./flight.ts";
import { encodeHandshakeMessage } from "./fragments.ts";
import {
  AlertDescription,
  type CertificateRequest,
  ClientCertificateType,
  type ClientHello,
  decodeCertificate,
  decodeCertificateRequest,
  decodeEcdhePskServerKeyExchange,
  decodeFinished,
  decodeHelloVerifyRequest,
  decodeNewSessionTicket,
  decodePskServerKeyExchange,
  decodeRawPublicKey,
  decodeServerHello,
  decodeServerHelloDone,
  decodeSignedEcdheServerKeyExchange,
  encodeCertificate,
  encodeCertificateVerify,
  encodeClientHello,
  encodeEcdheClientKeyExchange,
  encodeEcdhePskClientKeyExchange,
  encodeFinished,
  encodePskClientKeyExchange,
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
 * How many HelloVerifyRequests a client answers: RFC 6347 §4.2.1 lets a
 * server refuse a cookie (expired, or from before a restart) with a new one;
 * a server that never stops is not worth waiting for.
 */
const MAX_HELLO_VERIFIES = 4;

export type { CertificateVerdict };

/** The schemes we offer in signature_algorithms, in our order of preference. */
const OFFERED_SCHEMES: readonly SignatureScheme[] = [
  "ecdsa_secp256r1_sha256",
  "ecdsa_secp384r1_sha384",
  "rsa_pss_rsae_sha256",
  "rsa_pss_rsae_sha384",
  "rsa_pkcs1_sha256",
  "rsa_pkcs1_sha384",
];

/** What a client offers. */
export interface ClientHandshakeOptions {
  /** psk_identity sent in ClientKeyExchange (PSK suites). */
  readonly identity: Uint8Array;
  /** The key (PSK suites). */
  readonly psk: Uint8Array;
  /**
   * Checks the server's certificate chain (leaf first) at `now`; without
   * it the certificate suites are not offered (see `src/pki/`).
   */
  readonly verifyServer?: (chain: readonly Uint8Array[], now: number) => CertificateVerdict;
  /**
   * Raw public keys (SubjectPublicKeyInfo DER) pinned for the server: with
   * them the client asks for the server's key instead of a chain (RFC 7250)
   * and trusts exactly these.
   */
  readonly serverKeys?: readonly Uint8Array[];
  /** Our own certificate, for a server that asks for one (client authentication). */
  readonly certificate?: CertificateWithKey;
  /** Suites offered, in order. */
  readonly suites: readonly CipherSuite[];
  /** Groups offered for ECDHE, in order. */
  readonly groups: readonly GroupName[];
  /** Offer extended_master_secret (default true). */
  readonly extendedMasterSecret?: boolean;
  /** Offer encrypt_then_mac (default true). */
  readonly encryptThenMac?: boolean;
  /** Ask for a session ticket (RFC 5077; default true). */
  readonly tickets?: boolean;
  /** A session of an earlier connection to resume (its server may still refuse). */
  readonly resume?: SavedSession;
  /**
   * Offer a Connection ID (RFC 9146): this one in records the server sends
   * us (empty: none, but the server may give us its own).
   */
  readonly connectionId?: Uint8Array;
}

interface Agreed {
  readonly suite: CipherSuite;
  /** The session ID the ServerHello gave (empty: none). */
  readonly sessionId: Uint8Array;
  /** Whether the server said a NewSessionTicket comes (RFC 5077 §3.2). */
  readonly ticketPromised: boolean;
  /** The server's Connection ID, for records we send, when it answered the extension. */
  readonly serverConnectionId: Uint8Array | undefined;
  readonly serverRandom: Uint8Array;
  readonly extendedMasterSecret: boolean;
  readonly encryptThenMac: boolean;
  /** The type of the server's certificate (RFC 7250): X.509 unless it chose a raw key. */
  readonly serverCertificateType: number;
}

/** After ServerHelloDone: the keys exist. */
interface Keyed {
  readonly a: Agreed;
  readonly master: Uint8Array;
  readonly group: GroupName | undefined;
  /** True in an abbreviated handshake: the server's Finished comes first. */
  readonly resumed: boolean;
  /** The ticket the server sent in this handshake, once it did. */
  readonly ticket?: Uint8Array;
}

type ClientState =
  | { readonly kind: "await_server_hello" }
  | { readonly kind: "await_certificate"; readonly a: Agreed }
  | {
    readonly kind: "await_signed_key_exchange";
    readonly a: Agreed;
    /** The server's leaf key, from its trusted certificate. */
    readonly spki: Uint8Array;
  }
  | { readonly kind: "await_server_key_exchange_or_done"; readonly a: Agreed }
  | {
    readonly kind: "await_server_hello_done";
    readonly a: Agreed;
    readonly group: GroupName | undefined;
    readonly serverPublic: Uint8Array | undefined;
    /** What the server asked of our certificate, if it asked (RFC 5246 §7.4.4). */
    readonly request?: CertificateRequest;
  }
  | (Keyed & { readonly kind: "await_change_cipher_spec" })
  | (Keyed & { readonly kind: "await_finished" })
  | { readonly kind: "done"; readonly resumed: boolean }
  | { readonly kind: "failed" };

const EMPTY = new Uint8Array(0);

/** Drives the client half of one handshake. */
export class ClientHandshake implements HandshakeDriver {
  readonly #conn: HandshakeHost;
  readonly #options: ClientHandshakeOptions;
  readonly #random: Uint8Array;
  readonly #transcript = new Transcript();
  #hello: ClientHello;
  #seq = 0;
  #state: ClientState = { kind: "await_server_hello" };
  /** HelloVerifyRequests answered so far (a server may send another: a cookie expired). */
  #helloVerifies = 0;
  /** The messages a CertificateVerify of ours would sign, hashed as they come. */
  #signature: TranscriptSignature | undefined;

  constructor(conn: HandshakeHost, options: ClientHandshakeOptions) {
    this.#conn = conn;
    // A certificate suite only when there is a way to check the server's chain.
    const suites = options.suites.filter((s) =>
      s.kx === "psk" || s.kx === "ecdhe_psk" || options.verifyServer !== undefined ||
      options.serverKeys !== undefined
    );
    if (suites.length === 0) {
      throw new TypeError(
        "Cannot offer cipher suites: certificate suites need a way to verify the server",
      );
    }
    options = { ...options, suites };
    this.#options = options;
    this.#random = conn.config.random(32);
    const extensions: Extension[] = [
      { type: ExtensionType.RenegotiationInfo, data: encodeRenegotiationInfo(EMPTY) },
    ];
    const resume = options.resume;
    if (options.connectionId !== undefined) {
      extensions.push({
        type: ExtensionType.ConnectionId,
        data: encodeConnectionId(options.connectionId),
      });
    }
    if (options.tickets ?? true) {
      extensions.push({ type: ExtensionType.SessionTicket, data: resume?.ticket ?? EMPTY });
    }
    if (options.extendedMasterSecret ?? true) {
      extensions.push({ type: ExtensionType.ExtendedMasterSecret, data: EMPTY });
    }
    if ((options.encryptThenMac ?? true) && options.suites.some((s) => s.cipher.kind === "cbc")) {
      extensions.push({ type: ExtensionType.EncryptThenMac, data: EMPTY });
    }
    if (options.suites.some((s) => s.kx === "ecdhe_ecdsa" || s.kx === "ecdhe_rsa")) {
      extensions.push({
        type: ExtensionType.SignatureAlgorithms,
        data: encodeSignatureAlgorithms(OFFERED_SCHEMES.map((s) => SignatureSchemeCode[s])),
      });
      if (options.serverKeys !== undefined) {
        // A pinned key first; a chain too when there is a way to check one.
        const types: number[] = [CertificateType.RawPublicKey];
        if (options.verifyServer !== undefined) types.push(CertificateType.X509);
        extensions.push({
          type: ExtensionType.ServerCertificateType,
          data: encodeCertificateTypes(types),
        });
      }
    }
    if (options.suites.some((s) => s.kx !== "psk")) {
      extensions.push(
        {
          type: ExtensionType.SupportedGroups,
          data: encodeSupportedGroups(options.groups.map((g) => NamedGroup[g])),
        },
        { type: ExtensionType.EcPointFormats, data: encodeEcPointFormats([0]) },
      );
    }
    this.#hello = {
      clientVersion: DTLS_1_2,
      random: this.#random,
      // RFC 5077 §3.4: with a ticket, a session ID of our own, which the
      // server echoes when it resumes.
      sessionId: resume === undefined
        ? EMPTY
        : resume.sessionId.length > 0
        ? resume.sessionId
        : resume.ticket !== undefined
        ? conn.config.random(32)
        : EMPTY,
      cookie: EMPTY,
      cipherSuites: options.suites.map((s) => s.id),
      compressionMethods: new Uint8Array([0]),
      extensions,
    };
  }

  start(): void {
    this.#sendHello();
  }

  /** One message into the transcript, and into the signed one when we may sign it. */
  #record(message: Uint8Array): void {
    this.#transcript.add(message);
    this.#signature?.update(message);
  }

  #sendHello(): void {
    const body = encodeClientHello(this.#hello);
    this.#transcript.reset();
    // With a certificate of our own, the messages a CertificateVerify signs
    // run through its hashes too, from this ClientHello on.
    this.#signature = this.#options.certificate === undefined
      ? undefined
      : this.#conn.config.provider.transcriptSignature("sign");
    this.#record(encodeHandshakeMessage(HandshakeType.ClientHello, this.#seq, body));
    this.#conn.sendFlight([{
      kind: "handshake",
      epoch: 0,
      msgType: HandshakeType.ClientHello,
      messageSeq: this.#seq,
      body,
    }], true);
    this.#seq++;
  }

  onMessage(msgType: number, messageSeq: number, body: Uint8Array, epoch: number): void {
    const state = this.#state;
    const conn = this.#conn;
    switch (state.kind) {
      case "await_server_hello":
        if (epoch !== 0) break;
        if (
          msgType === HandshakeType.HelloVerifyRequest && this.#helloVerifies < MAX_HELLO_VERIFIES
        ) {
          // RFC 6347 §4.2.1: resend the same ClientHello with the cookie. The
          // first ClientHello and the HelloVerifyRequest stay out of the transcript.
          const hvr = decodeHelloVerifyRequest(body);
          if (hvr.serverVersion !== DTLS_1_0 && hvr.serverVersion !== DTLS_1_2) {
            throw new ProtocolError(
              AlertDescription.ProtocolVersion,
              "Cannot accept HelloVerifyRequest version",
            );
          }
          this.#helloVerifies++;
          conn.disarmTimer();
          this.#hello = { ...this.#hello, cookie: hvr.cookie.slice() };
          this.#sendHello();
          // The exchange starts over: messages buffered before this (a
          // flight of an earlier exchange at this address) are not the answer.
          conn.inbound.clear();
          conn.inbound.nextSeq = messageSeq + 1;
          return;
        }
        if (msgType !== HandshakeType.ServerHello) break;
        conn.disarmTimer();
        this.#state = this.#onServerHello(messageSeq, body);
        return;
      case "await_certificate":
        if (epoch !== 0 || msgType !== HandshakeType.Certificate) break;
        this.#state = this.#onCertificate(state, messageSeq, body);
        return;
      case "await_signed_key_exchange":
        if (epoch !== 0 || msgType !== HandshakeType.ServerKeyExchange) break;
        this.#state = this.#onSignedKeyExchange(state, messageSeq, body);
        return;
      case "await_server_key_exchange_or_done":
        if (epoch !== 0) break;
        if (msgType === HandshakeType.ServerKeyExchange) {
          this.#record(encodeHandshakeMessage(msgType, messageSeq, body));
          if (state.a.suite.kx === "ecdhe_psk") {
            const ske = decodeEcdhePskServerKeyExchange(body);
            const group = this.#options.groups.find((g) => NamedGroup[g] === ske.group);
            if (group === undefined) {
              throw new ProtocolError(
                AlertDescription.IllegalParameter,
                "Cannot use server's ECDH group",
              );
            }
            this.#state = {
              kind: "await_server_hello_done",
              a: state.a,
              group,
              serverPublic: ske.publicKey.slice(),
            };
          } else {
            decodePskServerKeyExchange(body);
            this.#state = {
              kind: "await_server_hello_done",
              a: state.a,
              group: undefined,
              serverPublic: undefined,
            };
          }
          return;
        }
        if (msgType === HandshakeType.ServerHelloDone && state.a.suite.kx === "psk") {
          this.#state = this.#onServerHelloDone(
            {
              kind: "await_server_hello_done",
              a: state.a,
              group: undefined,
              serverPublic: undefined,
            },
            messageSeq,
            body,
          );
          return;
        }
        break;
      case "await_server_hello_done":
        if (
          epoch === 0 && msgType === HandshakeType.CertificateRequest &&
          state.request === undefined &&
          (state.a.suite.kx === "ecdhe_ecdsa" || state.a.suite.kx === "ecdhe_rsa")
        ) {
          const request = decodeCertificateRequest(body);
          this.#record(encodeHandshakeMessage(msgType, messageSeq, body));
          this.#state = { ...state, request };
          return;
        }
        if (epoch !== 0 || msgType !== HandshakeType.ServerHelloDone) break;
        this.#state = this.#onServerHelloDone(state, messageSeq, body);
        return;
      case "await_change_cipher_spec":
        if (
          epoch === 0 && msgType === HandshakeType.NewSessionTicket && state.a.ticketPromised &&
          state.ticket === undefined
        ) {
          const { ticket } = decodeNewSessionTicket(body);
          this.#record(encodeHandshakeMessage(msgType, messageSeq, body));
          this.#state = { ...state, ticket: ticket.slice() };
          return;
        }
        break;
      case "await_finished":
        if (epoch !== 1 || msgType !== HandshakeType.Finished) break;
        this.#state = this.#onFinished(state, messageSeq, body);
        return;
      case "done":
        // A HelloRequest or anything else after the handshake: we do not renegotiate.
        conn.sendWarning(AlertDescription.NoRenegotiation);
        return;
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
    if (state.kind !== "await_change_cipher_spec") {
      if (state.kind === "done") return;
      // Reordered ahead of what it follows: drop; the server will retransmit.
      return;
    }
    // The state moves first: activating the epoch replays records of it
    // that arrived early (RFC 6347 §4.1), such as the Finished.
    this.#state = { ...state, kind: "await_finished" };
    this.#conn.activatePendingRead();
  }

  onPeerRetransmit(): void {
    const state = this.#state;
    // The server repeated its flight 4: it lost our flight 5. Resuming, it
    // repeated its Finished: it lost our final flight.
    if (
      (state.kind === "await_change_cipher_spec" || state.kind === "await_finished") &&
        !state.resumed ||
      state.kind === "done" && state.resumed
    ) {
      this.#conn.resendFlight();
    }
  }

  #onServerHello(messageSeq: number, body: Uint8Array): ClientState {
    const sh = decodeServerHello(body);
    if (sh.serverVersion !== DTLS_1_2) {
      throw new ProtocolError(
        AlertDescription.ProtocolVersion,
        "Cannot negotiate: server is not DTLS 1.2",
      );
    }
    const suite = suiteById(sh.cipherSuite);
    if (suite === undefined || !this.#options.suites.includes(suite)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot accept server's cipher suite",
      );
    }
    if (sh.compressionMethod !== 0) {
      throw new ProtocolError(AlertDescription.IllegalParameter, "Cannot accept compression");
    }
    if (hasDuplicateExtensions(sh.extensions)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot decode ServerHello: duplicate extension",
      );
    }
    for (const ext of sh.extensions) {
      // RFC 5246 §7.4.1.4: a server may only answer extensions we offered.
      if (findExtension(this.#hello.extensions, ext.type) === undefined) {
        throw new ProtocolError(
          AlertDescription.UnsupportedExtension,
          `Cannot accept extension ${ext.type}`,
        );
      }
    }
    this.#transcript.start(this.#conn.config.provider, suite.prfHash);
    this.#record(encodeHandshakeMessage(HandshakeType.ServerHello, messageSeq, body));
    const ems = findExtension(sh.extensions, ExtensionType.ExtendedMasterSecret) !== undefined;
    const etm = findExtension(sh.extensions, ExtensionType.EncryptThenMac) !== undefined &&
      suite.cipher.kind === "cbc";
    const typeExt = findExtension(sh.extensions, ExtensionType.ServerCertificateType);
    const serverCertificateType = typeExt === undefined
      ? CertificateType.X509
      : decodeCertificateTypeChoice(typeExt.data);
    const offeredTypes: number[] = this.#options.serverKeys === undefined
      ? [CertificateType.X509]
      : [
        CertificateType.RawPublicKey,
        ...(this.#options.verifyServer ? [CertificateType.X509] : []),
      ];
    if (!offeredTypes.includes(serverCertificateType)) {
      throw new ProtocolError(
        AlertDescription.UnsupportedCertificate,
        `Cannot accept server certificate type ${serverCertificateType}`,
      );
    }
    const cidExt = findExtension(sh.extensions, ExtensionType.ConnectionId);
    const serverConnectionId = cidExt === undefined
      ? undefined
      : decodeConnectionId(cidExt.data).slice();
    if (serverConnectionId !== undefined && suite.cipher.kind === "cbc") {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot use a Connection ID with a CBC suite",
      );
    }
    const ours = this.#options.connectionId;
    if (serverConnectionId !== undefined && ours !== undefined && ours.length > 0) {
      this.#conn.useConnectionId(ours);
    }
    const a: Agreed = {
      suite,
      serverConnectionId,
      sessionId: sh.sessionId.slice(),
      ticketPromised: findExtension(sh.extensions, ExtensionType.SessionTicket) !== undefined,
      serverRandom: sh.random.slice(),
      extendedMasterSecret: ems,
      encryptThenMac: etm,
      serverCertificateType,
    };
    const resume = this.#options.resume;
    if (
      resume !== undefined && sh.sessionId.length > 0 &&
      constantTimeEqual(sh.sessionId, this.#hello.sessionId)
    ) {
      return this.#resumed(resume, a);
    }
    const certified = suite.kx === "ecdhe_ecdsa" || suite.kx === "ecdhe_rsa";
    return certified ? { kind: "await_certificate", a } : {
      kind: "await_server_key_exchange_or_done",
      a,
    };
  }

  /**
   * The server echoed our session ID: it resumes the session (RFC 5246
   * §7.4.1.3), whose suite and extensions must be as they were.
   */
  #resumed(resume: SavedSession, a: Agreed): ClientState {
    if (
      a.suite.id !== resume.suiteId || a.extendedMasterSecret !== resume.extendedMasterSecret ||
      a.encryptThenMac !== resume.encryptThenMac
    ) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Cannot resume: the server changed the session's suite or extensions",
      );
    }
    const conn = this.#conn;
    const provider = conn.config.provider;
    const master = resume.masterSecret.slice();
    const keys = keyBlock(provider, a.suite, master, this.#random, a.serverRandom);
    this.#installKeys(a, keys);
    // The server keeps the session ID it echoed; a ticket it renews comes next.
    return {
      kind: "await_change_cipher_spec",
      a: { ...a, sessionId: resume.sessionId },
      master,
      group: undefined,
      resumed: true,
    };
  }

  /**
   * Both directions' keys of epoch 1, with the Connection IDs agreed (RFC
   * 9146): the server's in records we send, ours in records we read.
   */
  #installKeys(a: Agreed, keys: KeyBlock): void {
    const conn = this.#conn;
    const provider = conn.config.provider;
    const options = { encryptThenMac: a.encryptThenMac, random: conn.config.random };
    const agreed = a.serverConnectionId !== undefined;
    conn.setWrite(
      1,
      createProtection(a.suite, keys.client, provider, {
        ...options,
        connectionId: agreed ? a.serverConnectionId : undefined,
      }),
    );
    conn.setPendingRead(
      createProtection(a.suite, keys.server, provider, {
        ...options,
        connectionId: agreed ? this.#options.connectionId : undefined,
      }),
    );
  }

  /** Our Finished body: verify_data over the transcript so far (RFC 5246 §7.4.9). */
  #finished(a: Agreed, master: Uint8Array): Uint8Array {
    const provider = this.#conn.config.provider;
    return encodeFinished(
      verifyData(
        provider,
        a.suite.prfHash,
        master,
        "client",
        this.#transcript.hash(provider, a.suite.prfHash),
      ),
    );
  }

  /** The server's chain: trusted, or the handshake fails with the verdict's alert. */
  #onCertificate(
    state: Extract<ClientState, { kind: "await_certificate" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ClientState {
    if (state.a.serverCertificateType === CertificateType.RawPublicKey) {
      // RFC 7250: the key itself, trusted when it is one we pinned.
      const spki = decodeRawPublicKey(body);
      if (
        !this.#options.serverKeys!.some((k) => constantTimeEqual(k, spki))
      ) {
        throw new ProtocolError(
          AlertDescription.BadCertificate,
          "Cannot trust server raw public key: not the one pinned",
        );
      }
      this.#record(encodeHandshakeMessage(HandshakeType.Certificate, messageSeq, body));
      return { kind: "await_signed_key_exchange", a: state.a, spki: spki.slice() };
    }
    const chain = decodeCertificate(body);
    if (chain.length === 0) {
      throw new ProtocolError(AlertDescription.BadCertificate, "Cannot accept an empty chain");
    }
    if (this.#options.verifyServer === undefined) {
      throw new ProtocolError(AlertDescription.UnsupportedCertificate, "Cannot check a chain");
    }
    const verdict = this.#options.verifyServer(chain, this.#conn.now);
    if (!verdict.ok) {
      throw new ProtocolError(
        VERDICT_ALERTS[verdict.alert],
        `Cannot trust server certificate: ${verdict.reason}`,
      );
    }
    this.#record(encodeHandshakeMessage(HandshakeType.Certificate, messageSeq, body));
    return { kind: "await_signed_key_exchange", a: state.a, spki: verdict.spki };
  }

  /**
   * The server's ephemeral key, signed over both randoms by its
   * certificate's key (RFC 8422 §5.4), with a scheme we offered that fits
   * the suite.
   */
  #onSignedKeyExchange(
    state: Extract<ClientState, { kind: "await_signed_key_exchange" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ClientState {
    const ske = decodeSignedEcdheServerKeyExchange(body);
    const scheme = signatureSchemeOf(ske.scheme);
    const fitsSuite = scheme !== undefined &&
      scheme.startsWith(state.a.suite.kx === "ecdhe_ecdsa" ? "ecdsa_" : "rsa_");
    if (!fitsSuite || !OFFERED_SCHEMES.includes(scheme)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        `Cannot accept signature algorithm ${ske.scheme}`,
      );
    }
    const group = this.#options.groups.find((g) => NamedGroup[g] === ske.group);
    if (group === undefined) {
      throw new ProtocolError(AlertDescription.IllegalParameter, "Cannot use server's ECDH group");
    }
    const provider = this.#conn.config.provider;
    const signed = concat(this.#random, state.a.serverRandom, ske.params);
    if (!provider.verify(state.spki, scheme, signed, ske.signature)) {
      throw new ProtocolError(
        AlertDescription.DecryptError,
        "Cannot verify the server's ServerKeyExchange signature",
      );
    }
    this.#record(encodeHandshakeMessage(HandshakeType.ServerKeyExchange, messageSeq, body));
    return {
      kind: "await_server_hello_done",
      a: state.a,
      group,
      serverPublic: ske.publicKey.slice(),
    };
  }

  #onServerHelloDone(
    state: Extract<ClientState, { kind: "await_server_hello_done" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ClientState {
    decodeServerHelloDone(body);
    const conn = this.#conn;
    const provider = conn.config.provider;
    this.#record(encodeHandshakeMessage(HandshakeType.ServerHelloDone, messageSeq, body));
    const { a } = state;
    let cke: Uint8Array;
    let premaster: Uint8Array;
    if (a.suite.kx === "ecdhe_ecdsa" || a.suite.kx === "ecdhe_rsa") {
      const share = provider.keyShare(state.group!, conn.config.random);
      const shared = share.sharedSecret(state.serverPublic!);
      if (shared === null) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "Cannot use server's ECDH public key",
        );
      }
      cke = encodeEcdheClientKeyExchange(share.publicKey);
      premaster = shared;
    } else if (a.suite.kx === "ecdhe_psk") {
      if (state.group === undefined || state.serverPublic === undefined) {
        throw new ProtocolError(
          AlertDescription.UnexpectedMessage,
          "Cannot do ECDHE: no ServerKeyExchange",
        );
      }
      const share: KeyShare = provider.keyShare(state.group, conn.config.random);
      const shared = share.sharedSecret(state.serverPublic);
      if (shared === null) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "Cannot use server's ECDH public key",
        );
      }
      cke = encodeEcdhePskClientKeyExchange({
        identity: this.#options.identity,
        publicKey: share.publicKey,
      });
      premaster = ecdhePskPremaster(shared, this.#options.psk);
    } else {
      cke = encodePskClientKeyExchange(this.#options.identity);
      premaster = pskPremaster(this.#options.psk);
    }
    // Asked for a certificate: ours if we have one the server can check,
    // else an empty one (RFC 5246 §7.4.6: the message is sent either way).
    const ours = state.request === undefined ? undefined : this.#ownCertificate(state.request);
    const flight: FlightItem[] = [];
    if (state.request !== undefined) {
      const body = encodeCertificate(ours?.certificate.chain ?? []);
      const seq = this.#seq++;
      this.#record(encodeHandshakeMessage(HandshakeType.Certificate, seq, body));
      flight.push({
        kind: "handshake",
        epoch: 0,
        msgType: HandshakeType.Certificate,
        messageSeq: seq,
        body,
      });
    }
    const ckeSeq = this.#seq++;
    this.#record(encodeHandshakeMessage(HandshakeType.ClientKeyExchange, ckeSeq, cke));
    flight.push({
      kind: "handshake",
      epoch: 0,
      msgType: HandshakeType.ClientKeyExchange,
      messageSeq: ckeSeq,
      body: cke,
    });
    const master = masterSecret(
      provider,
      a.suite.prfHash,
      premaster,
      a.extendedMasterSecret
        ? { extended: true, sessionHash: this.#transcript.hash(provider, a.suite.prfHash) }
        : { extended: false, clientRandom: this.#random, serverRandom: a.serverRandom },
    );
    premaster.fill(0);
    const keys = keyBlock(provider, a.suite, master, this.#random, a.serverRandom);
    this.#installKeys(a, keys);
    if (ours !== undefined) {
      // RFC 5246 §7.4.8: a signature over every message so far, the
      // ClientKeyExchange included, proving we hold the certificate's key.
      const body = encodeCertificateVerify({
        scheme: SignatureSchemeCode[ours.scheme],
        signature: this.#signature!.sign(ours.certificate.key, ours.scheme),
      });
      const seq = this.#seq++;
      this.#record(encodeHandshakeMessage(HandshakeType.CertificateVerify, seq, body));
      flight.push({
        kind: "handshake",
        epoch: 0,
        msgType: HandshakeType.CertificateVerify,
        messageSeq: seq,
        body,
      });
    }
    const finished = this.#finished(a, master);
    const finSeq = this.#seq++;
    this.#record(encodeHandshakeMessage(HandshakeType.Finished, finSeq, finished));
    flight.push({ kind: "change_cipher_spec", epoch: 0 }, {
      kind: "handshake",
      epoch: 1,
      msgType: HandshakeType.Finished,
      messageSeq: finSeq,
      body: finished,
    });
    conn.sendFlight(flight, true);
    return { kind: "await_change_cipher_spec", a, master, group: state.group, resumed: false };
  }

  /**
   * Our certificate and the scheme to sign with, when we have one the
   * request allows: its key's type among the certificate types, one of its
   * schemes among the algorithms.
   */
  #ownCertificate(
    request: CertificateRequest,
  ): { certificate: CertificateWithKey; scheme: SignatureScheme } | undefined {
    const certificate = this.#options.certificate;
    if (certificate === undefined) return undefined;
    const type = certificate.key.type === "ec"
      ? ClientCertificateType.ecdsa_sign
      : ClientCertificateType.rsa_sign;
    if (!request.certificateTypes.includes(type)) return undefined;
    const scheme = certificate.key.schemes.find((s) =>
      request.schemes.includes(SignatureSchemeCode[s])
    );
    return scheme === undefined ? undefined : { certificate, scheme };
  }

  #onFinished(
    state: Extract<ClientState, { kind: "await_finished" }>,
    messageSeq: number,
    body: Uint8Array,
  ): ClientState {
    const conn = this.#conn;
    const provider = conn.config.provider;
    const { a, master } = state;
    const expected = verifyData(
      provider,
      a.suite.prfHash,
      master,
      "server",
      this.#transcript.hash(provider, a.suite.prfHash),
    );
    if (!constantTimeEqual(expected, decodeFinished(body))) {
      throw new ProtocolError(AlertDescription.DecryptError, "Cannot verify server Finished");
    }
    conn.disarmTimer();
    if (state.resumed) {
      // Abbreviated: our Finished answers the server's, over it too.
      this.#record(encodeHandshakeMessage(HandshakeType.Finished, messageSeq, body));
      const ours = this.#finished(a, master);
      conn.sendFlight([{ kind: "change_cipher_spec", epoch: 0 }, {
        kind: "handshake",
        epoch: 1,
        msgType: HandshakeType.Finished,
        messageSeq: this.#seq++,
        body: ours,
      }], false);
    }
    const resume = this.#options.resume;
    // RFC 5077 §3.3: an empty ticket is none.
    const sent = state.ticket !== undefined && state.ticket.length > 0 ? state.ticket : undefined;
    const ticket = sent ?? (state.resumed ? resume?.ticket : undefined);
    if (a.extendedMasterSecret && (a.sessionId.length > 0 || ticket !== undefined)) {
      conn.emit({
        type: "resumable_session",
        session: {
          sessionId: ticket === undefined ? a.sessionId : EMPTY,
          ...(ticket === undefined ? {} : { ticket }),
          suiteId: a.suite.id,
          masterSecret: master.slice(),
          extendedMasterSecret: true,
          encryptThenMac: a.encryptThenMac,
        },
      });
    }
    master.fill(0);
    conn.established();
    conn.emit({
      type: "handshake_complete",
      suite: a.suite.name,
      version: "DTLS 1.2",
      identity: new TextDecoder().decode(this.#options.identity),
      identityBytes: this.#options.identity,
      extendedMasterSecret: a.extendedMasterSecret,
      encryptThenMac: a.encryptThenMac,
      group: state.group,
      ...(state.resumed ? { resumed: resume!.ticket !== undefined ? "ticket" : "session_id" } : {}),
    });
    return { kind: "done", resumed: state.resumed };
  }
}
