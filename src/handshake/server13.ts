/**
 * The DTLS 1.3 server's handshake from the second ClientHello on (RFC 8446
 * §4 with RFC 9147 §5), as computation only: the connection
 * (`src/connection/connection13.ts`) frames, protects, sends and
 * retransmits what this returns.
 *
 *     ClientHello (+cookie)  ->  check the cookie's choices still hold,
 *                                pick the PSK identity, check its binder
 *                           <-   ServerHello, {EncryptedExtensions},
 *                                [{Certificate}, {CertificateVerify}], {Finished}
 *     {Finished}             ->  check it: application keys in use
 *
 * Authenticated by an external PSK, with (EC)DHE (psk_dhe_ke) or without
 * (psk_ke), by a resumption PSK a ticket of ours carries, or by the
 * server's certificate with (EC)DHE. The transcript starts with the
 * message_hash that stands for the first ClientHello and the
 * HelloRetryRequest rebuilt from the cookie. Once the client's Finished
 * checks out, a NewSessionTicket gives it a resumption PSK (RFC 8446
 * §4.6.1), sealed into the ticket under the ticket keys, so that any
 * instance holding them resumes it.
 *
 * @module
 */

import { constantTimeEqual } from "../crypto/constant_time.ts";
import type {
  CryptoProvider,
  KeyShare,
  RandomSource,
  RunningHash,
  SignatureScheme,
} from "../crypto/provider.ts";
import { schemes13, VERIFY_SCHEMES_13 } from "../crypto/signatures.ts";
import { checkCertificateVerify13, readCertificate13 } from "./certificate13.ts";
import type { CipherSuite13 } from "../record/suites13.ts";
import { suite13ById } from "../record/suites13.ts";
import type { Session } from "../session/session.ts";
import { pskCheck } from "../session/resumption.ts";
import type { TicketRefusal, TicketSealer } from "../session/tickets.ts";
import type { ClientHello13, RetryState } from "./client_hello13.ts";
import { messageHash } from "./client_hello13.ts";
import { ProtocolError } from "./errors.ts";
import { NamedGroup, SignatureSchemeCode } from "./extensions.ts";
import { AlertDescription, encodeCertificateVerify, HandshakeType } from "./messages.ts";
import { toHex } from "../codec/hex.ts";
import { VERDICT_ALERTS } from "./driver.ts";
import {
  encodeCertificate13,
  encodeCertificateRequest13,
  encodeEncryptedExtensions,
  encodeNewSessionTicket13,
  encodeServerHello13,
  HandshakeType13,
  type OfferedPsks,
  PskMode,
  signatureContent,
  transcriptMessage,
} from "./messages13.ts";
import type { ClientAuthPolicy, KeyLog, ServerCertificate } from "./server.ts";
import type { PeerCertificate } from "./driver.ts";
import {
  derivedSecret,
  deriveSecret,
  emptyHash,
  finishedKey,
  finishedMac,
  hashLength,
  hkdfExpandLabel,
  hkdfExtract,
} from "./tls13_keys.ts";
import type { Handshake13Driver, Handshake13Host } from "./driver13.ts";

/** The traffic secrets of one stage, client's and server's. */
export interface TrafficSecrets {
  readonly client: Uint8Array;
  readonly server: Uint8Array;
}

/** The server's flight and the secrets it is protected with. */
export interface ServerFlight13 {
  readonly serverHello: Uint8Array;
  readonly encryptedExtensions: Uint8Array;
  /** Certificate and CertificateVerify, when the certificate authenticates us. */
  readonly certificate?: { readonly chain: Uint8Array; readonly verify: Uint8Array };
  /** A CertificateRequest, when we ask for the client's. */
  readonly certificateRequest?: Uint8Array;
  readonly finished: Uint8Array;
  /** Epoch 2's secrets. */
  readonly handshake: TrafficSecrets;
  /** Epoch 3's secrets (the client's used once its Finished checks out). */
  readonly application: TrafficSecrets;
}

/** The handshake's policy and primitives. */
export interface ServerHandshake13Options {
  readonly provider: CryptoProvider;
  readonly random: RandomSource;
  /** Longest PSK identity we look up, bytes. */
  readonly maxIdentityLength: number;
  /** The Connection ID for the ServerHello's connection_id (RFC 9147 §9), if one was agreed. */
  readonly connectionId?: Uint8Array;
  /** Our certificate as it is now, for a handshake the cookie says it authenticates. */
  readonly certificate?: ServerCertificate | undefined;
  /** Resumption by ticket; none: tickets are neither resumed nor issued. */
  readonly resumption?: Resumption13 | undefined;
  /** The NSS key log (`--keylog`, debugging only): the traffic secrets of each completed handshake. */
  readonly keyLog?: KeyLog | undefined;
  /**
   * Client authentication as it is now (a reload may replace it), on the
   * certificate's handshakes (RFC 8446 §4.3.2: never on a PSK's): a
   * CertificateRequest, and the client's chain checked with the policy of
   * the moment it comes. Raw public keys are not taken in 1.3.
   */
  readonly clientAuth?: () => ClientAuthPolicy | undefined;
}

/** Resumption by ticket in DTLS 1.3 (RFC 8446 §4.6.1, §2.2). */
export interface Resumption13 {
  readonly tickets: TicketSealer;
  /** The time of the second ClientHello (a ticket's lifetime counts to it). */
  readonly now: number;
  /**
   * Whether a session's authentication still holds: its PSK identity still
   * has the key it was made with, or the certificate it was made with is
   * still ours. False when that cannot be known now (an asynchronous key store).
   */
  readonly stillServed: (session: Session) => boolean;
  /** Whether tickets are issued after an external PSK's handshake (not with an asynchronous store). */
  readonly ticketsForPsk: boolean;
}

/** How the server's driver finds keys. */
export interface ServerDriver13Options {
  /** The key of an identity: now, later (a Promise), or undefined when unknown. */
  readonly lookupPsk: (
    identity: Uint8Array,
  ) => Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** Bytes of the random key an unknown identity is checked with. */
  readonly dummyKeyLength: number;
}

/**
 * The server's role on its connection: looks the identity's key up (waiting
 * for an asynchronous store), sends the flight, checks the client's Finished.
 */
export class ServerDriver13 implements Handshake13Driver {
  readonly readsPlaintext = false;
  readonly #host: Handshake13Host;
  readonly #handshake: ServerHandshake13;
  readonly #options: ServerDriver13Options;
  #waiting = false;
  #application: TrafficSecrets | undefined = undefined;

  constructor(host: Handshake13Host, handshake: ServerHandshake13, options: ServerDriver13Options) {
    this.#host = host;
    this.#handshake = handshake;
    this.#options = options;
  }

  start(): void {
    const handshake = this.#handshake;
    this.#host.useSuite(handshake.suite);
    for (const reason of handshake.ticketRefusals) {
      this.#host.emit({ type: "ticket_refused", reason });
    }
    if (handshake.authenticatesWithCertificate) {
      this.#send(handshake.respondWithCertificate());
      return;
    }
    if (handshake.resumes) {
      this.#send(handshake.respondResumed());
      return;
    }
    const found = this.#options.lookupPsk(this.#handshake.identity);
    if (found instanceof Promise) {
      this.#waiting = true;
      this.#host.emit({ type: "psk_lookup", lookup: found });
      return;
    }
    this.#respond(found);
  }

  onPskLookup(result: Uint8Array | undefined | Error): void {
    if (!this.#waiting) return;
    this.#waiting = false;
    if (result instanceof Error) throw result;
    if (result !== undefined && !(result instanceof Uint8Array && result.length > 0)) {
      throw new Error("Key store answered with something other than a key");
    }
    this.#respond(result);
  }

  #respond(key: Uint8Array | undefined): void {
    const host = this.#host;
    const identity = this.#handshake.identity;
    host.emit({
      type: "psk_identity",
      identity: new TextDecoder().decode(identity),
      identityBytes: identity.slice(),
      known: key !== undefined,
    });
    this.#send(this.#handshake.respond(key, this.#options.dummyKeyLength));
  }

  #send(flight: ServerFlight13): void {
    const host = this.#host;
    this.#application = flight.application;
    host.installWrite(2, flight.handshake.server);
    host.installRead(2, flight.handshake.client);
    const certificate = flight.certificate;
    host.sendFlight([
      { epoch: 0, msgType: HandshakeType.ServerHello, body: flight.serverHello },
      { epoch: 2, msgType: HandshakeType13.EncryptedExtensions, body: flight.encryptedExtensions },
      ...(flight.certificateRequest === undefined ? [] : [
        {
          epoch: 2,
          msgType: HandshakeType.CertificateRequest,
          body: flight.certificateRequest,
        },
      ]),
      ...(certificate === undefined ? [] : [
        { epoch: 2, msgType: HandshakeType.Certificate, body: certificate.chain },
        { epoch: 2, msgType: HandshakeType.CertificateVerify, body: certificate.verify },
      ]),
      { epoch: 2, msgType: HandshakeType.Finished, body: flight.finished },
    ]);
  }

  onMessage(msgType: number, body: Uint8Array, epoch: number): void {
    const application = this.#application;
    const due = this.#handshake.clientMessageDue;
    if (msgType !== due || epoch !== 2 || application === undefined) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        `Unexpected handshake message ${msgType} (${due} was due)`,
      );
    }
    if (msgType === HandshakeType.Certificate) {
      return this.#handshake.takeClientCertificate(body, this.#host.now);
    }
    if (msgType === HandshakeType.CertificateVerify) {
      return this.#handshake.takeClientCertificateVerify(body);
    }
    this.#handshake.finish(body);
    this.#application = undefined;
    const host = this.#host;
    host.installWrite(3, application.server);
    host.installRead(3, application.client);
    // The client's Finished says it has our whole flight; our ACK says we have it.
    host.flightAnswered();
    host.acknowledge();
    const handshake = this.#handshake;
    const identity = handshake.identity;
    const peerCertificate = handshake.peerCertificate;
    host.emit({
      type: "handshake_complete",
      suite: handshake.suite.name,
      version: "DTLS 1.3",
      identity: new TextDecoder().decode(identity),
      identityBytes: identity.slice(),
      extendedMasterSecret: true,
      encryptThenMac: false,
      group: handshake.group,
      ...(handshake.resumes ? { resumed: "ticket" as const } : {}),
      ...(peerCertificate === undefined ? {} : { peerCertificate }),
    });
    host.established();
    const ticket = handshake.newSessionTicket(host.now);
    if (ticket !== undefined) host.sendMessage(HandshakeType13.NewSessionTicket, ticket);
  }
}

/** One DTLS 1.3 server handshake, from a second ClientHello whose cookie verified. */
export class ServerHandshake13 {
  readonly #options: ServerHandshake13Options;
  readonly #state: RetryState;
  readonly #hello: ClientHello13;
  readonly #helloBody: Uint8Array;
  #transcript!: RunningHash;
  /**
   * The identity the client's binder is checked for: the first whose binder
   * fits the suite's hash (-1: the certificate authenticates us).
   */
  readonly #identityIndex: number;
  /** The certificate and the scheme its CertificateVerify is signed with, when it authenticates us. */
  #signer: { certificate: ServerCertificate; scheme: SignatureScheme } | undefined;
  /** The session of the ticket at #identityIndex, when a ticket authenticates the client. */
  #resumed: Session | undefined = undefined;
  /** Why each ticket offered was not resumed. */
  readonly #ticketRefusals: TicketRefusal[] = [];
  /** The external PSK's check value, for the session a ticket will carry. */
  #pskCheck: Uint8Array | undefined = undefined;
  /** Whether our CertificateRequest went out. */
  #askedForCertificate = false;
  /** The handshake message we wait for from the client next. */
  #due: number = HandshakeType.Finished;
  /** The client's certificate, once its chain checked out (its key, until its CertificateVerify does). */
  #client:
    | {
      readonly spki: Uint8Array;
      readonly subject: string;
      readonly notAfter: number;
      readonly policyId: Uint8Array;
    }
    | undefined = undefined;
  #clientVerified = false;
  #clientFinishedKey: Uint8Array | undefined = undefined;
  /** The traffic secrets for the key log, held until the client's Finished checks out. */
  #logged: [string, Uint8Array][] | undefined = undefined;
  #masterSecret: Uint8Array | undefined = undefined;
  #resumptionSecret: Uint8Array | undefined = undefined;

  /**
   * Checks what the second ClientHello must keep of the cookie's choices:
   * the suite offered, a key share of the chosen group when (EC)DHE was
   * chosen, a PSK identity whose binder is as long as the suite's hash.
   * Throws a ProtocolError otherwise.
   */
  constructor(
    options: ServerHandshake13Options,
    state: RetryState,
    hello: ClientHello13,
    helloBody: Uint8Array,
    retryRequest: Uint8Array,
  ) {
    this.#options = options;
    this.#state = state;
    this.#hello = hello;
    this.#helloBody = helloBody;
    const suite = state.suite;
    if (!hello.hello.cipherSuites.includes(suite.id)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Second ClientHello drops the suite",
      );
    }
    if (state.group !== undefined && this.#clientShare() === undefined) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "Second ClientHello without the key share asked for",
      );
    }
    const psks = hello.psks;
    if (state.auth === "certificate") {
      // RFC 8446 §4.1.2: the second ClientHello may drop a PSK, never add one.
      if (psks !== undefined) {
        throw new ProtocolError(AlertDescription.IllegalParameter, "Second ClientHello adds a PSK");
      }
      // The certificate may have been replaced (or removed) since the cookie.
      const certificate = options.certificate;
      const scheme = certificate === undefined
        ? undefined
        : schemes13(certificate.key).find((s) =>
          hello.signatureSchemes.includes(SignatureSchemeCode[s])
        );
      if (scheme === undefined) {
        throw new ProtocolError(
          AlertDescription.HandshakeFailure,
          "No certificate that signs a scheme the client takes",
        );
      }
      this.#signer = { certificate: certificate!, scheme };
      this.#identityIndex = -1;
    } else {
      if (psks === undefined) {
        throw new ProtocolError(
          AlertDescription.HandshakeFailure,
          "Second ClientHello without a PSK",
        );
      }
      const mode = state.group === undefined ? PskMode.PskKe : PskMode.PskDheKe;
      if (!hello.pskModes.includes(mode)) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "Second ClientHello changes PSK modes",
        );
      }
      this.#identityIndex = this.#choosePsk(psks);
      if (this.#identityIndex < 0) {
        // RFC 8446 §4.2.11: a PSK we cannot take is declined; our
        // certificate may still serve, when (EC)DHE was chosen.
        const signer = this.#ticketRefusals.length > 0 && state.group !== undefined
          ? this.#certificateSigner()
          : undefined;
        if (signer === undefined) {
          throw new ProtocolError(
            this.#ticketRefusals.length > 0
              ? AlertDescription.HandshakeFailure
              : AlertDescription.IllegalParameter,
            this.#ticketRefusals.length > 0
              ? `No PSK we can resume (tickets refused: ${
                this.#ticketRefusals.join(", ")
              }) and no certificate to fall back to`
              : "No PSK binder for the suite's hash",
          );
        }
        this.#signer = signer;
      }
    }
    this.#startTranscript(retryRequest);
  }

  /** The transcript up to the second ClientHello: the first one's message_hash, the HelloRetryRequest. */
  #startTranscript(retryRequest: Uint8Array): void {
    const hash = this.#state.suite.hash;
    this.#transcript = this.#options.provider.runningHash(hash);
    this.#transcript.update(messageHash(hash, this.#state.helloHash));
    this.#transcript.update(transcriptMessage(HandshakeType.ServerHello, retryRequest));
  }

  /** Our certificate and the scheme it signs with for this client, if both are there. */
  #certificateSigner(): { certificate: ServerCertificate; scheme: SignatureScheme } | undefined {
    const certificate = this.#options.certificate;
    if (certificate === undefined) return undefined;
    const offered = this.#hello.signatureSchemes;
    const scheme = schemes13(certificate.key).find((s) => offered.includes(SignatureSchemeCode[s]));
    return scheme === undefined ? undefined : { certificate, scheme };
  }

  /**
   * The index of the PSK identity to check the binder of: the first whose
   * binder is as long as the suite's hash and that is a ticket of ours we
   * can resume (it names one of our ticket keys), or else short enough to
   * be an identity of the key file; -1 when none is. A long identity that
   * is no ticket of ours (tickets off, or its key rotated away) is refused
   * as one, so that the certificate may serve instead. Only the first
   * {@link MAX_TICKETS_OPENED} tickets are opened: each costs an AEAD.
   */
  #choosePsk(psks: OfferedPsks): number {
    const suite = this.#state.suite;
    const size = hashLength(suite.hash);
    const resumption = this.#options.resumption;
    let opened = 0;
    for (let i = 0; i < psks.identities.length; i++) {
      if (psks.binders[i]!.length !== size) continue;
      const identity = psks.identities[i]!.identity;
      const ours = resumption !== undefined && resumption.tickets.namesOurKey(identity);
      if (!ours) {
        if (identity.length <= this.#options.maxIdentityLength) return i;
        this.#ticketRefusals.push("unknown_key");
        continue;
      }
      if (opened === MAX_TICKETS_OPENED) continue;
      opened++;
      const result = resumption.tickets.open(identity, resumption.now);
      if ("refused" in result) {
        this.#ticketRefusals.push(result.refused);
        continue;
      }
      const session = result.session;
      const sessionSuite = suite13ById(session.suiteId);
      if (
        session.dtls13 !== true || sessionSuite === undefined || sessionSuite.hash !== suite.hash
      ) {
        this.#ticketRefusals.push("mismatch");
        continue;
      }
      // RFC 8446 §4.6.1: a ticket is good for seven days at most, whatever our lifetime.
      if (resumption.now - session.issuedAt > MAX_TICKET_LIFETIME_S * 1000) {
        this.#ticketRefusals.push("expired");
        continue;
      }
      if (!resumption.stillServed(session)) {
        this.#ticketRefusals.push(session.pskCheck.length > 0 ? "identity_unknown" : "mismatch");
        continue;
      }
      this.#resumed = session;
      return i;
    }
    return -1;
  }

  /** The suite chosen. */
  get suite(): CipherSuite13 {
    return this.#state.suite;
  }

  /** The key exchange group, undefined for psk_ke. */
  get group(): string | undefined {
    return this.#state.group;
  }

  /** Whether the certificate authenticates us (no PSK to look up). */
  get authenticatesWithCertificate(): boolean {
    return this.#signer !== undefined;
  }

  /** Whether a ticket of ours is resumed (its PSK is in it: nothing to look up). */
  get resumes(): boolean {
    return this.#resumed !== undefined;
  }

  /** Why each ticket the client offered was not resumed. */
  get ticketRefusals(): readonly TicketRefusal[] {
    return this.#ticketRefusals;
  }

  /**
   * The PSK identity of the key file the handshake stands on: the one whose
   * key it needs, or a resumed session's; empty for the certificate's.
   */
  get identity(): Uint8Array {
    if (this.#resumed !== undefined) return this.#resumed.identityBytes;
    if (this.#identityIndex < 0) return new Uint8Array(0);
    return this.#hello.psks!.identities[this.#identityIndex]!.identity;
  }

  #clientShare(): Uint8Array | undefined {
    const group = this.#state.group;
    if (group === undefined) return undefined;
    return this.#hello.keyShares.find((k) => k.group === NamedGroup[group])?.keyExchange;
  }

  /**
   * The server's flight, given the identity's key (undefined: unknown, and
   * then a random key of `dummyLength` bytes, so that it fails as a wrong
   * key does: decrypt_error at the binder, after the same work).
   */
  respond(psk: Uint8Array | undefined, dummyLength: number): ServerFlight13 {
    if (this.#identityIndex < 0 || this.#resumed !== undefined) {
      throw new Error("Cannot check an external PSK's binder: none chosen");
    }
    const key = psk ?? this.#options.random(dummyLength);
    const early = this.#checkBinder(key, "ext binder", psk !== undefined);
    if (psk !== undefined && this.#options.resumption?.ticketsForPsk === true) {
      this.#pskCheck = pskCheck(this.#options.provider, psk);
    }
    return this.#flight(early, this.#identityIndex);
  }

  /** The server's flight of a resumption: the ticket's PSK, its binder "res binder". */
  respondResumed(): ServerFlight13 {
    const session = this.#resumed;
    if (session === undefined) throw new Error("Cannot resume: no ticket chosen");
    const early = this.#checkBinder(session.masterSecret, "res binder", true);
    return this.#flight(early, this.#identityIndex);
  }

  /**
   * Checks the chosen identity's binder (RFC 8446 §4.2.11.2) under `key`
   * and returns the early secret; decrypt_error when it does not verify or
   * the key was a stand-in (`real` false), after the same work.
   */
  #checkBinder(key: Uint8Array, label: "ext binder" | "res binder", real: boolean): Uint8Array {
    const { provider } = this.#options;
    const hash = this.#state.suite.hash;
    const early = hkdfExtract(provider, hash, new Uint8Array(0), key);
    const binderKey = deriveSecret(provider, hash, early, label, emptyHash(provider, hash));
    const psks = this.#hello.psks!;
    // The binder covers the ClientHello up to its binders.
    const framed = transcriptMessage(HandshakeType.ClientHello, this.#helloBody);
    const partial = framed.subarray(0, framed.length - psks.bindersLength);
    this.#transcript.update(partial);
    const expected = finishedMac(
      provider,
      hash,
      finishedKey(provider, hash, binderKey),
      this.#transcript.digest(),
    );
    const binder = psks.binders[this.#identityIndex]!;
    if (!constantTimeEqual(expected, binder) || !real) {
      throw new ProtocolError(AlertDescription.DecryptError, "PSK binder does not verify");
    }
    this.#transcript.update(framed.subarray(partial.length));
    return early;
  }

  /** The server's flight of a handshake the certificate authenticates. */
  respondWithCertificate(): ServerFlight13 {
    if (this.#signer === undefined) throw new Error("Cannot respond with no certificate");
    const { provider } = this.#options;
    const hash = this.#state.suite.hash;
    this.#transcript.update(transcriptMessage(HandshakeType.ClientHello, this.#helloBody));
    // RFC 8446 §7.1: without a PSK the early secret is extracted from zeros.
    const zeros = new Uint8Array(hashLength(hash));
    return this.#flight(hkdfExtract(provider, hash, new Uint8Array(0), zeros), undefined);
  }

  /** The flight from the ServerHello on; the transcript holds everything up to it. */
  #flight(early: Uint8Array, selectedIdentity: number | undefined): ServerFlight13 {
    const { provider } = this.#options;
    const suite = this.#state.suite;
    const hash = suite.hash;
    const zeros = new Uint8Array(hashLength(hash));
    let shared: Uint8Array = zeros;
    let ours: KeyShare | undefined;
    const group = this.#state.group;
    if (group !== undefined) {
      ours = provider.keyShare(group, this.#options.random);
      const secret = ours.sharedSecret(this.#clientShare()!);
      if (secret === null) {
        throw new ProtocolError(AlertDescription.IllegalParameter, "Invalid key share");
      }
      shared = secret;
    }
    const serverHello = encodeServerHello13({
      random: this.#options.random(32),
      sessionId: this.#hello.hello.sessionId,
      cipherSuite: suite.id,
      ...(ours === undefined
        ? {}
        : { keyShare: { group: NamedGroup[group!], keyExchange: ours.publicKey } }),
      ...(selectedIdentity === undefined ? {} : { selectedIdentity }),
      ...(this.#options.connectionId === undefined
        ? {}
        : { connectionId: this.#options.connectionId }),
    });
    this.#transcript.update(transcriptMessage(HandshakeType.ServerHello, serverHello));
    const handshakeSecret = hkdfExtract(
      provider,
      hash,
      derivedSecret(provider, hash, early),
      shared,
    );
    const helloHash = this.#transcript.digest();
    const handshake = {
      client: deriveSecret(provider, hash, handshakeSecret, "c hs traffic", helloHash),
      server: deriveSecret(provider, hash, handshakeSecret, "s hs traffic", helloHash),
    };
    const encryptedExtensions = encodeEncryptedExtensions([]);
    this.#transcript.update(
      transcriptMessage(HandshakeType13.EncryptedExtensions, encryptedExtensions),
    );
    let certificate: ServerFlight13["certificate"];
    let certificateRequest: Uint8Array | undefined;
    const signer = this.#signer;
    if (signer !== undefined && this.#options.clientAuth?.() !== undefined) {
      certificateRequest = encodeCertificateRequest13(
        VERIFY_SCHEMES_13.map((s) => SignatureSchemeCode[s]),
      );
      this.#transcript.update(
        transcriptMessage(HandshakeType.CertificateRequest, certificateRequest),
      );
      this.#askedForCertificate = true;
      this.#due = HandshakeType.Certificate;
    }
    if (signer !== undefined) {
      const chain = certificateBody(signer.certificate);
      this.#transcript.update(transcriptMessage(HandshakeType.Certificate, chain));
      const signature = signer.certificate.key.sign(
        signer.scheme,
        signatureContent("server", this.#transcript.digest()),
      );
      const verify = encodeCertificateVerify({
        scheme: SignatureSchemeCode[signer.scheme],
        signature,
      });
      this.#transcript.update(transcriptMessage(HandshakeType.CertificateVerify, verify));
      certificate = { chain, verify };
    }
    const finished = finishedMac(
      provider,
      hash,
      finishedKey(provider, hash, handshake.server),
      this.#transcript.digest(),
    );
    this.#transcript.update(transcriptMessage(HandshakeType.Finished, finished));
    const master = hkdfExtract(
      provider,
      hash,
      derivedSecret(provider, hash, handshakeSecret),
      zeros,
    );
    const serverFinishedHash = this.#transcript.digest();
    const application = {
      client: deriveSecret(provider, hash, master, "c ap traffic", serverFinishedHash),
      server: deriveSecret(provider, hash, master, "s ap traffic", serverFinishedHash),
    };
    this.#clientFinishedKey = finishedKey(provider, hash, handshake.client);
    if (this.#options.keyLog !== undefined) {
      this.#logged = [
        ["CLIENT_HANDSHAKE_TRAFFIC_SECRET", handshake.client],
        ["SERVER_HANDSHAKE_TRAFFIC_SECRET", handshake.server],
        ["CLIENT_TRAFFIC_SECRET_0", application.client],
        ["SERVER_TRAFFIC_SECRET_0", application.server],
      ];
    }
    this.#masterSecret = master;
    return {
      serverHello,
      encryptedExtensions,
      ...(certificate === undefined ? {} : { certificate }),
      ...(certificateRequest === undefined ? {} : { certificateRequest }),
      finished,
      handshake,
      application,
    };
  }

  /** The handshake message type the client's next must be. */
  get clientMessageDue(): number {
    return this.#due;
  }

  /** The client's certificate, once it authenticated with it. */
  get peerCertificate(): PeerCertificate | undefined {
    const resumed = this.#resumed?.peerCertificate;
    if (resumed !== undefined) return { subject: resumed.subject, spkiSha256: resumed.spkiSha256 };
    const client = this.#client;
    if (client === undefined || !this.#clientVerified) return undefined;
    return {
      subject: client.subject,
      spkiSha256: toHex(this.#options.provider.hash("sha256", client.spki)),
    };
  }

  /**
   * The client's Certificate, asked for by our CertificateRequest: its chain
   * checked under the policy; an empty one is certificate_required unless
   * client authentication is optional (RFC 8446 §4.4.2.4).
   */
  takeClientCertificate(body: Uint8Array, now: number): void {
    if (!this.#askedForCertificate || this.#due !== HandshakeType.Certificate) {
      throw new ProtocolError(AlertDescription.UnexpectedMessage, "Certificate not asked for");
    }
    // The policy now: it may have been replaced (a reload) since we asked.
    const policy = this.#options.clientAuth?.();
    if (policy === undefined) {
      throw new ProtocolError(
        AlertDescription.HandshakeFailure,
        "Cannot check the client certificate: client authentication was turned off",
      );
    }
    const chain = readCertificate13(body, "client");
    this.#transcript.update(transcriptMessage(HandshakeType.Certificate, body));
    if (chain.length === 0) {
      if (policy.required) {
        throw new ProtocolError(
          AlertDescription.CertificateRequired,
          "Cannot continue: the client sent no certificate",
        );
      }
      this.#due = HandshakeType.Finished;
      return;
    }
    if (policy.check === undefined) {
      throw new ProtocolError(
        AlertDescription.UnsupportedCertificate,
        "Cannot check an X.509 client certificate: only raw public keys are configured",
      );
    }
    const verdict = policy.check(chain, now);
    if (!verdict.ok) {
      throw new ProtocolError(
        VERDICT_ALERTS[verdict.alert],
        `Cannot trust client certificate: ${verdict.reason}`,
      );
    }
    this.#client = {
      spki: verdict.spki,
      subject: verdict.subject,
      notAfter: verdict.notAfter,
      policyId: policy.id ?? new Uint8Array(0),
    };
    this.#due = HandshakeType.CertificateVerify;
  }

  /** The client's CertificateVerify: its signature over the transcript, with a scheme we asked for. */
  takeClientCertificateVerify(body: Uint8Array): void {
    const client = this.#client;
    if (client === undefined || this.#due !== HandshakeType.CertificateVerify) {
      throw new ProtocolError(AlertDescription.UnexpectedMessage, "CertificateVerify unasked");
    }
    checkCertificateVerify13(body, "client", client.spki, this.#transcript.digest());
    this.#transcript.update(transcriptMessage(HandshakeType.CertificateVerify, body));
    this.#clientVerified = true;
    this.#due = HandshakeType.Finished;
  }

  /** Checks the client's Finished (decrypt_error when it does not verify). */
  finish(verifyData: Uint8Array): void {
    const key = this.#clientFinishedKey;
    if (
      key === undefined || this.#masterSecret === undefined || this.#due !== HandshakeType.Finished
    ) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        "Finished before the server's flight",
      );
    }
    const { provider } = this.#options;
    const hash = this.#state.suite.hash;
    const expected = finishedMac(provider, hash, key, this.#transcript.digest());
    if (!constantTimeEqual(expected, verifyData)) {
      throw new ProtocolError(AlertDescription.DecryptError, "Client Finished does not verify");
    }
    this.#transcript.update(transcriptMessage(HandshakeType.Finished, verifyData));
    this.#resumptionSecret = deriveSecret(
      provider,
      hash,
      this.#masterSecret,
      "res master",
      this.#transcript.digest(),
    );
    this.#clientFinishedKey = undefined;
    this.#masterSecret = undefined;
    // Only a handshake that completed is in the key log: no peer can grow it by failing handshakes.
    const random = this.#hello.hello.random;
    for (const [label, secret] of this.#logged ?? []) this.#options.keyLog!(random, secret, label);
    this.#logged = undefined;
  }

  /**
   * The NewSessionTicket to send once the handshake completed at `now`, or
   * undefined when none is due: resumption off, an external PSK from an
   * asynchronous store, or a session at the end of its lifetime. A resumed
   * session's ticket keeps its first handshake's time: resuming never
   * extends a session's life.
   */
  newSessionTicket(now: number): Uint8Array | undefined {
    const resumption = this.#options.resumption;
    const secret = this.#resumptionSecret;
    if (resumption === undefined || secret === undefined) return undefined;
    const resumed = this.#resumed;
    const signer = this.#signer;
    let origin: Pick<
      Session,
      "issuedAt" | "identityBytes" | "pskCheck" | "serverSpkiSha256" | "peerCertificate"
    >;
    if (resumed !== undefined) origin = resumed;
    else if (signer !== undefined) {
      const client = this.#clientVerified ? this.#client : undefined;
      origin = {
        issuedAt: now,
        identityBytes: new Uint8Array(0),
        pskCheck: new Uint8Array(0),
        serverSpkiSha256: this.#options.provider.hash("sha256", signer.certificate.spki),
        ...(client === undefined ? {} : {
          peerCertificate: {
            subject: client.subject,
            spkiSha256: toHex(this.#options.provider.hash("sha256", client.spki)),
            notAfter: client.notAfter,
            policyId: client.policyId,
          },
        }),
      };
    } else if (this.#pskCheck !== undefined) {
      origin = {
        issuedAt: now,
        identityBytes: this.identity.slice(),
        pskCheck: this.#pskCheck,
        serverSpkiSha256: new Uint8Array(0),
      };
    } else return undefined;
    const left = origin.issuedAt + resumption.tickets.lifetimeMs - now;
    if (left < 1000) return undefined;
    const { provider } = this.#options;
    const suite = this.#state.suite;
    const size = hashLength(suite.hash);
    // One ticket per connection: its nonce need only differ from no other of the connection's.
    const nonce = new Uint8Array(1);
    const psk = hkdfExpandLabel(provider, suite.hash, secret, "resumption", nonce, size);
    const ticket = resumption.tickets.seal({
      ...origin,
      suiteId: suite.id,
      masterSecret: psk,
      dtls13: true,
      extendedMasterSecret: true,
      encryptThenMac: false,
    });
    psk.fill(0);
    const random = this.#options.random(4);
    return encodeNewSessionTicket13({
      lifetime: Math.min(MAX_TICKET_LIFETIME_S, Math.floor(left / 1000)),
      ageAdd: ((random[0]! << 24) | (random[1]! << 16) | (random[2]! << 8) | random[3]!) >>> 0,
      nonce,
      ticket,
    });
  }
}

/** Tickets opened of one ClientHello at most: each costs an AEAD. */
const MAX_TICKETS_OPENED = 4;

/** The longest a ticket may be used, seconds (RFC 8446 §4.6.1: seven days). */
const MAX_TICKET_LIFETIME_S = 604_800;

/** Each certificate's Certificate body, encoded once. */
const CERTIFICATE_BODIES = new WeakMap<ServerCertificate, Uint8Array>();

function certificateBody(certificate: ServerCertificate): Uint8Array {
  let body = CERTIFICATE_BODIES.get(certificate);
  if (body === undefined) {
    body = encodeCertificate13(certificate.chain);
    CERTIFICATE_BODIES.set(certificate, body);
  }
  return body;
}
