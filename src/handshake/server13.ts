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
 * (psk_ke), or by the server's certificate with (EC)DHE. The transcript
 * starts with the message_hash that stands for the first ClientHello and
 * the HelloRetryRequest rebuilt from the cookie.
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
import { schemes13 } from "../crypto/signatures.ts";
import type { CipherSuite13 } from "../record/suites13.ts";
import type { ClientHello13, RetryState } from "./client_hello13.ts";
import { messageHash } from "./client_hello13.ts";
import { ProtocolError } from "./errors.ts";
import { NamedGroup, SignatureSchemeCode } from "./extensions.ts";
import { AlertDescription, encodeCertificateVerify, HandshakeType } from "./messages.ts";
import {
  encodeCertificate13,
  encodeEncryptedExtensions,
  encodeServerHello13,
  HandshakeType13,
  PskMode,
  serverSignatureContent,
  transcriptMessage,
} from "./messages13.ts";
import type { ServerCertificate } from "./server.ts";
import {
  derivedSecret,
  deriveSecret,
  emptyHash,
  finishedKey,
  finishedMac,
  hashLength,
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
    this.#host.useSuite(this.#handshake.suite);
    if (this.#handshake.authenticatesWithCertificate) {
      this.#send(this.#handshake.respondWithCertificate());
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
      ...(certificate === undefined ? [] : [
        { epoch: 2, msgType: HandshakeType.Certificate, body: certificate.chain },
        { epoch: 2, msgType: HandshakeType.CertificateVerify, body: certificate.verify },
      ]),
      { epoch: 2, msgType: HandshakeType.Finished, body: flight.finished },
    ]);
  }

  onMessage(msgType: number, body: Uint8Array, epoch: number): void {
    const application = this.#application;
    if (msgType !== HandshakeType.Finished || epoch !== 2 || application === undefined) {
      throw new ProtocolError(
        AlertDescription.UnexpectedMessage,
        `Unexpected handshake message ${msgType} (the client's Finished was due)`,
      );
    }
    this.#handshake.finish(body);
    this.#application = undefined;
    const host = this.#host;
    host.installWrite(3, application.server);
    host.installRead(3, application.client);
    // The client's Finished says it has our whole flight; our ACK says we have it.
    host.flightAnswered();
    host.acknowledge();
    const identity = this.#handshake.identity;
    host.emit({
      type: "handshake_complete",
      suite: this.#handshake.suite.name,
      version: "DTLS 1.3",
      identity: new TextDecoder().decode(identity),
      identityBytes: identity.slice(),
      extendedMasterSecret: true,
      encryptThenMac: false,
      group: this.#handshake.group,
    });
    host.established();
  }
}

/** One DTLS 1.3 server handshake, from a second ClientHello whose cookie verified. */
export class ServerHandshake13 {
  readonly #options: ServerHandshake13Options;
  readonly #state: RetryState;
  readonly #hello: ClientHello13;
  readonly #helloBody: Uint8Array;
  readonly #transcript: RunningHash;
  /**
   * The identity the client's binder is checked for: the first whose binder
   * fits the suite's hash (-1: the certificate authenticates us).
   */
  readonly #identityIndex: number;
  /** The certificate and the scheme its CertificateVerify is signed with, when it authenticates us. */
  readonly #signer: { certificate: ServerCertificate; scheme: SignatureScheme } | undefined;
  #clientFinishedKey: Uint8Array | undefined = undefined;
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
      const size = hashLength(suite.hash);
      this.#identityIndex = psks.binders.findIndex((b, i) =>
        b.length === size && psks.identities[i]!.identity.length <= options.maxIdentityLength
      );
      if (this.#identityIndex < 0) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "No PSK binder for the suite's hash",
        );
      }
      this.#signer = undefined;
    }
    this.#transcript = options.provider.runningHash(suite.hash);
    this.#transcript.update(messageHash(suite.hash, state.helloHash));
    this.#transcript.update(transcriptMessage(HandshakeType.ServerHello, retryRequest));
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

  /** The PSK identity whose key the handshake needs (empty when the certificate authenticates us). */
  get identity(): Uint8Array {
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
    const { provider } = this.#options;
    const suite = this.#state.suite;
    const hash = suite.hash;
    if (this.#identityIndex < 0) throw new Error("Cannot check a binder: no PSK offered");
    const key = psk ?? this.#options.random(dummyLength);
    const early = hkdfExtract(provider, hash, new Uint8Array(0), key);
    const binderKey = deriveSecret(provider, hash, early, "ext binder", emptyHash(provider, hash));
    const psks = this.#hello.psks!;
    // The binder covers the ClientHello up to its binders (RFC 8446 §4.2.11.2).
    const body = this.#helloBody;
    const framed = transcriptMessage(HandshakeType.ClientHello, body);
    const partial = framed.subarray(0, framed.length - psks.bindersLength);
    this.#transcript.update(partial);
    const expected = finishedMac(
      provider,
      hash,
      finishedKey(provider, hash, binderKey),
      this.#transcript.digest(),
    );
    const binder = psks.binders[this.#identityIndex]!;
    if (!constantTimeEqual(expected, binder) || psk === undefined) {
      throw new ProtocolError(AlertDescription.DecryptError, "PSK binder does not verify");
    }
    this.#transcript.update(framed.subarray(partial.length));
    return this.#flight(early, this.#identityIndex);
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
    const signer = this.#signer;
    if (signer !== undefined) {
      const chain = certificateBody(signer.certificate);
      this.#transcript.update(transcriptMessage(HandshakeType.Certificate, chain));
      const signature = signer.certificate.key.sign(
        signer.scheme,
        serverSignatureContent(this.#transcript.digest()),
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
    this.#masterSecret = master;
    return {
      serverHello,
      encryptedExtensions,
      ...(certificate === undefined ? {} : { certificate }),
      finished,
      handshake,
      application,
    };
  }

  /** Checks the client's Finished (decrypt_error when it does not verify). */
  finish(verifyData: Uint8Array): void {
    const key = this.#clientFinishedKey;
    if (key === undefined || this.#masterSecret === undefined) {
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
  }

  /** The resumption master secret, once the client's Finished checked out. */
  get resumptionSecret(): Uint8Array | undefined {
    return this.#resumptionSecret;
  }
}

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
