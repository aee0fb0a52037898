/**
 * The client side of the DTLS 1.3 handshake, with an external PSK or
 * checking the server's certificate, used by the tests, the load tool and
 * the client command:
 *
 *     ClientHello (+key_share, [+pre_shared_key])  -->
 *                                                  <--  HelloRetryRequest (+cookie, [+key_share group])
 *     ClientHello (+cookie, [+pre_shared_key])     -->
 *                                                  <--  ServerHello, {EncryptedExtensions},
 *                                                       [{Certificate}, {CertificateVerify}], {Finished}
 *     {Finished}                                   -->
 *                                                  <--  [ACK]
 *
 * A PSK is bound with the hash of the first suite offered (a resumed
 * session's: its suite's), and only suites of that hash are offered with
 * it. A ticket from a NewSessionTicket is given to the owner as a
 * `resumable_session` event; offered back (`resume`), ahead of the
 * external PSK, it resumes without the certificate.
 *
 * @module
 */

import { constantTimeEqual } from "../crypto/constant_time.ts";
import type { GroupName, KeyShare, RunningHash } from "../crypto/provider.ts";
import { schemes13, VERIFY_SCHEMES_13 } from "../crypto/signatures.ts";
import { checkCertificateVerify13, readCertificate13 } from "./certificate13.ts";
import { Writer } from "../codec/writer.ts";
import type { CipherSuite13 } from "../record/suites13.ts";
import { messageHash } from "./client_hello13.ts";
import type { Handshake13Driver, Handshake13Host, OutgoingMessage13 } from "./driver13.ts";
import {
  type CertificateWithKey,
  type ChainCheck,
  type SavedSession,
  VERDICT_ALERTS,
} from "./driver.ts";
import { suite13ById } from "../record/suites13.ts";
import { ProtocolError } from "./errors.ts";
import {
  encodeConnectionId,
  encodeSignatureAlgorithms,
  encodeSupportedGroups,
  ExtensionType,
  findExtension,
  MAX_CID_LENGTH,
  NamedGroup,
  SignatureSchemeCode,
} from "./extensions.ts";
import {
  AlertDescription,
  encodeCertificateVerify,
  encodeClientHello,
  type Extension,
  HandshakeType,
} from "./messages.ts";
import {
  decodeCertificateRequest13,
  decodeEncryptedExtensions,
  decodeNewSessionTicket13,
  decodeServerHello13,
  DTLS_1_3,
  encodeCertificate13,
  ExtensionType13,
  HandshakeType13,
  HELLO_RETRY_REQUEST_RANDOM,
  PskMode,
  signatureContent,
  transcriptMessage,
} from "./messages13.ts";
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
import { DecodeError } from "../codec/reader.ts";

/** What a DTLS 1.3 client offers. */
export interface Client13Options {
  /** The external PSK's identity and key; without them the server's certificate must authenticate it. */
  readonly identity?: Uint8Array | undefined;
  readonly psk?: Uint8Array | undefined;
  /** Checks the server's chain when no PSK is chosen (see `src/pki/chain_verifier.ts`). */
  readonly verifyServer?: ChainCheck;
  /** A DTLS 1.3 session to resume: its ticket is offered first. */
  readonly resume?: SavedSession | undefined;
  /** Our certificate and key, for a server that asks for one (client authentication). */
  readonly certificate?: CertificateWithKey | undefined;
  /** Suites offered, in order: the PSK is bound with the first's hash, and only suites of it are offered. */
  readonly suites: readonly CipherSuite13[];
  /** Groups supported, in order. */
  readonly groups: readonly GroupName[];
  /** Groups to send key shares of in the first ClientHello (default: the first group; none: the server must ask). */
  readonly keyShares?: readonly GroupName[];
  /** PSK key exchange modes offered, in order (default: with (EC)DHE, then without). */
  readonly modes?: readonly ("psk_dhe_ke" | "psk_ke")[];
  /**
   * Offer a Connection ID (RFC 9147 §9): this one in the records the server
   * sends us (empty: none, but the server may give us its own).
   */
  readonly connectionId?: Uint8Array;
}

/** A PSK the ClientHello offers: a ticket's (binder "res binder") or the key file's ("ext binder"). */
interface PskOffer {
  readonly identity: Uint8Array;
  readonly key: Uint8Array;
  readonly resumption: boolean;
  /** obfuscated_ticket_age at `now` (0 for an external PSK, RFC 8446 §4.2.11). */
  readonly age: (now: number) => number;
}

/** The PSK key exchange modes offered when none are given: with (EC)DHE first. */
const DEFAULT_MODES: readonly ("psk_dhe_ke" | "psk_ke")[] = ["psk_dhe_ke", "psk_ke"];

type Stage =
  | "hello"
  | "retried"
  | "encrypted_extensions"
  | "certificate"
  | "certificate_verify"
  | "finished"
  | "done";

/** The client's role on its DTLS 1.3 connection. */
export class ClientDriver13 implements Handshake13Driver {
  readonly #host: Handshake13Host;
  readonly #options: Client13Options;
  readonly #suites: readonly CipherSuite13[];
  readonly #random: Uint8Array;
  #stage: Stage = "hello";
  #shares = new Map<GroupName, KeyShare>();
  /** The first ClientHello as the transcript frames it, until the server's answer says which hash. */
  #firstHello: Uint8Array | undefined = undefined;
  #transcript: RunningHash | undefined = undefined;
  #suite: CipherSuite13 | undefined = undefined;
  #handshakeSecret: Uint8Array | undefined = undefined;
  #serverHandshakeSecret: Uint8Array | undefined = undefined;
  #clientHandshakeSecret: Uint8Array | undefined = undefined;
  #group: GroupName | undefined = undefined;
  /** The server's key, once its chain checked out, for its CertificateVerify. */
  #serverKey: Uint8Array | undefined = undefined;
  readonly #offers: readonly PskOffer[];
  /** The offer the ServerHello chose; undefined: the certificate authenticates the server. */
  #chosen: PskOffer | undefined = undefined;
  #resumptionSecret: Uint8Array | undefined = undefined;
  /** The schemes of the server's CertificateRequest, when it asked for our certificate. */
  #requested: readonly number[] | undefined = undefined;

  constructor(host: Handshake13Host, options: Client13Options) {
    if (options.suites.length === 0) throw new TypeError("Cannot offer DTLS 1.3: no suites");
    if ((options.psk === undefined) !== (options.identity === undefined)) {
      throw new TypeError(
        "Cannot offer a PSK without its identity, or an identity without its key",
      );
    }
    const offers: PskOffer[] = [];
    const resume = options.resume;
    const resumeSuite = resume === undefined ? undefined : suite13ById(resume.suiteId);
    if (resume?.ticket !== undefined && resumeSuite !== undefined) {
      const receivedAt = resume.receivedAt ?? 0;
      const ageAdd = resume.ticketAgeAdd ?? 0;
      offers.push({
        identity: resume.ticket,
        key: resume.masterSecret,
        resumption: true,
        age: (now) => (Math.max(0, Math.floor(now - receivedAt)) + ageAdd) % 0x1_0000_0000,
      });
    }
    if (options.psk !== undefined) {
      offers.push({
        identity: options.identity!,
        key: options.psk,
        resumption: false,
        age: () => 0,
      });
    }
    if (offers.length === 0 && options.verifyServer === undefined) {
      throw new TypeError("Cannot connect without a PSK or a check of the server's certificate");
    }
    this.#host = host;
    this.#options = options;
    this.#offers = offers;
    const hash = resumeSuite?.hash ?? options.suites[0]!.hash;
    this.#suites = offers.length === 0
      ? options.suites
      : options.suites.filter((s) => s.hash === hash);
    if (this.#suites.length === 0) {
      throw new TypeError("Cannot resume: no suite of the session's hash");
    }
    this.#random = host.config.random(32);
  }

  get readsPlaintext(): boolean {
    return this.#stage === "hello" || this.#stage === "retried";
  }

  start(): void {
    // The server puts our CID in its records from its first protected one,
    // before its EncryptedExtensions say it agreed: we read it from the start.
    const cid = this.#options.connectionId;
    if (cid !== undefined && cid.length > 0) this.#host.useConnectionIds(cid, new Uint8Array(0));
    for (const group of this.#options.keyShares ?? this.#options.groups.slice(0, 1)) {
      this.#shares.set(group, this.#host.config.provider.keyShare(group, this.#host.config.random));
    }
    const body = this.#clientHello(undefined, []);
    this.#firstHello = transcriptMessage(HandshakeType.ClientHello, body);
    this.#host.sendFlight([{ epoch: 0, msgType: HandshakeType.ClientHello, body }]);
  }

  /** A ClientHello body, its binder computed over `before` and itself up to the binders. */
  #clientHello(cookie: Uint8Array | undefined, before: readonly Uint8Array[]): Uint8Array {
    const { provider } = this.#host.config;
    const hash = this.#suites[0]!.hash;
    const size = hashLength(hash);
    const modes = this.#options.modes ?? DEFAULT_MODES;
    const extensions: Extension[] = [
      { type: ExtensionType13.SupportedVersions, data: new Uint8Array([2, 0xfe, 0xfc]) },
      {
        type: ExtensionType.SupportedGroups,
        data: encodeSupportedGroups(this.#options.groups.map((g) => NamedGroup[g])),
      },
      {
        type: ExtensionType13.KeyShare,
        data: new Writer(128).vec16((list) => {
          for (const [group, share] of this.#shares) {
            list.u16(NamedGroup[group]).opaque16(share.publicKey);
          }
        }).finish(),
      },
    ];
    const offers = this.#offers;
    if (offers.length > 0) {
      extensions.push({
        type: ExtensionType13.PskKeyExchangeModes,
        data: new Writer(8).vec8((list) => {
          for (const m of modes) list.u8(m === "psk_ke" ? PskMode.PskKe : PskMode.PskDheKe);
        }).finish(),
      });
    }
    if (this.#options.verifyServer !== undefined) {
      extensions.push({
        type: ExtensionType.SignatureAlgorithms,
        data: encodeSignatureAlgorithms(VERIFY_SCHEMES_13.map((s) => SignatureSchemeCode[s])),
      });
    }
    if (this.#options.connectionId !== undefined) {
      extensions.push({
        type: ExtensionType.ConnectionId,
        data: encodeConnectionId(this.#options.connectionId),
      });
    }
    if (cookie !== undefined) {
      extensions.push({
        type: ExtensionType13.Cookie,
        data: new Writer(cookie.length + 2).opaque16(cookie).finish(),
      });
    }
    if (offers.length > 0) {
      const now = this.#host.now;
      const pskExtension = new Writer(64)
        .vec16((ids) => {
          for (const o of offers) {
            const age = o.age(now);
            ids.opaque16(o.identity).u16(age >>> 16).u16(age & 0xffff);
          }
        })
        .vec16((binders) => {
          for (const _ of offers) binders.opaque8(new Uint8Array(size));
        })
        .finish();
      extensions.push({ type: ExtensionType13.PreSharedKey, data: pskExtension });
    }
    const body = encodeClientHello({
      clientVersion: 0xfefd,
      random: this.#random,
      sessionId: new Uint8Array(0),
      cookie: new Uint8Array(0),
      cipherSuites: this.#suites.map((s) => s.id),
      compressionMethods: new Uint8Array([0]),
      extensions,
    });
    if (offers.length === 0) return body;
    // Each binder covers everything before the binders list (RFC 8446 §4.2.11.2).
    const framed = transcriptMessage(HandshakeType.ClientHello, body);
    const bindersLength = 2 + offers.length * (1 + size);
    const partial = framed.subarray(0, framed.length - bindersLength);
    const transcript = provider.runningHash(hash);
    for (const part of before) transcript.update(part);
    transcript.update(partial);
    const digest = transcript.digest();
    let at = body.length - bindersLength + 2;
    for (const offer of offers) {
      const early = hkdfExtract(provider, hash, new Uint8Array(0), offer.key);
      const label = offer.resumption ? "res binder" : "ext binder";
      const binderKey = deriveSecret(provider, hash, early, label, emptyHash(provider, hash));
      body.set(finishedMac(provider, hash, finishedKey(provider, hash, binderKey), digest), at + 1);
      at += 1 + size;
    }
    return body;
  }

  onMessage(msgType: number, body: Uint8Array, epoch: number): void {
    switch (this.#stage) {
      case "hello":
      case "retried":
        if (msgType !== HandshakeType.ServerHello || epoch !== 0) break;
        return this.#onServerHello(body);
      case "encrypted_extensions":
        if (msgType !== HandshakeType13.EncryptedExtensions || epoch !== 2) break;
        return this.#onEncryptedExtensions(body);
      case "certificate":
        if (epoch !== 2) break;
        if (msgType === HandshakeType.CertificateRequest && this.#requested === undefined) {
          return this.#onCertificateRequest(body);
        }
        if (msgType !== HandshakeType.Certificate) break;
        return this.#onCertificate(body);
      case "certificate_verify":
        if (msgType !== HandshakeType.CertificateVerify || epoch !== 2) break;
        return this.#onCertificateVerify(body);
      case "finished":
        if (msgType !== HandshakeType.Finished || epoch !== 2) break;
        return this.#onFinished(body);
      case "done":
        // A ticket is taken (and acknowledged by the connection).
        if (msgType === HandshakeType13.NewSessionTicket) return this.#onNewSessionTicket(body);
        break;
    }
    throw new ProtocolError(
      AlertDescription.UnexpectedMessage,
      `Unexpected handshake message ${msgType} in epoch ${epoch}`,
    );
  }

  #onServerHello(body: Uint8Array): void {
    let hello;
    try {
      hello = decodeServerHello13(body);
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new ProtocolError(
          AlertDescription.DecodeError,
          `Cannot decode ServerHello: ${error.message}`,
        );
      }
      throw error;
    }
    const versions = findExtension(hello.extensions, ExtensionType13.SupportedVersions);
    if (
      versions === undefined || versions.data.length !== 2 ||
      ((versions.data[0]! << 8) | versions.data[1]!) !== DTLS_1_3
    ) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "ServerHello did not choose DTLS 1.3",
      );
    }
    const suite = this.#suites.find((s) => s.id === hello.cipherSuite);
    if (suite === undefined || (this.#suite !== undefined && this.#suite !== suite)) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "ServerHello chose a suite not offered",
      );
    }
    const { provider } = this.#host.config;
    const retry = hello.random.every((b, i) => b === HELLO_RETRY_REQUEST_RANDOM[i]);
    if (retry) {
      if (this.#stage === "retried") {
        throw new ProtocolError(AlertDescription.UnexpectedMessage, "A second HelloRetryRequest");
      }
      this.#stage = "retried";
      this.#suite = suite;
      const asked = hello.keyShare?.group;
      if (asked !== undefined) {
        const group = this.#options.groups.find((g) => NamedGroup[g] === asked);
        if (group === undefined || this.#shares.has(group)) {
          throw new ProtocolError(
            AlertDescription.IllegalParameter,
            "HelloRetryRequest asks for a group we cannot or did",
          );
        }
        this.#shares = new Map([[group, provider.keyShare(group, this.#host.config.random)]]);
      } else if (hello.cookie === undefined) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "HelloRetryRequest that changes nothing",
        );
      }
      const first = messageHash(suite.hash, provider.hash(suite.hash, this.#firstHello!));
      const retryMessage = transcriptMessage(HandshakeType.ServerHello, body);
      const transcript = provider.runningHash(suite.hash);
      transcript.update(first);
      transcript.update(retryMessage);
      const second = this.#clientHello(hello.cookie, [first, retryMessage]);
      transcript.update(transcriptMessage(HandshakeType.ClientHello, second));
      this.#transcript = transcript;
      this.#host.flightAnswered();
      this.#host.sendFlight([{ epoch: 0, msgType: HandshakeType.ClientHello, body: second }]);
      return;
    }
    const selected = hello.selectedIdentity;
    if (selected !== undefined && selected >= this.#offers.length) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "ServerHello chose a PSK we did not offer",
      );
    }
    const chosen = selected === undefined ? undefined : this.#offers[selected];
    if (chosen === undefined && this.#options.verifyServer === undefined) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "ServerHello chose no PSK of ours",
      );
    }
    this.#chosen = chosen;
    const hash = suite.hash;
    let transcript = this.#transcript;
    if (transcript === undefined) {
      transcript = provider.runningHash(hash);
      transcript.update(this.#firstHello!);
    }
    transcript.update(transcriptMessage(HandshakeType.ServerHello, body));
    this.#transcript = transcript;
    this.#suite = suite;
    let shared: Uint8Array = new Uint8Array(hashLength(hash));
    const share = hello.keyShare;
    if (share !== undefined) {
      const group = [...this.#shares.keys()].find((g) => NamedGroup[g] === share.group);
      if (group === undefined || !("keyExchange" in share)) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "ServerHello key share of a group we did not send",
        );
      }
      const secret = this.#shares.get(group)!.sharedSecret(share.keyExchange);
      if (secret === null) {
        throw new ProtocolError(AlertDescription.IllegalParameter, "Invalid key share");
      }
      shared = secret;
      this.#group = group;
    } else if (chosen === undefined || !(this.#options.modes ?? DEFAULT_MODES).includes("psk_ke")) {
      throw new ProtocolError(
        AlertDescription.IllegalParameter,
        "ServerHello without the (EC)DHE we asked for",
      );
    }
    this.#shares.clear();
    if (hello.connectionId !== undefined) {
      const ours = this.#options.connectionId;
      if (ours === undefined) {
        throw new ProtocolError(AlertDescription.UnsupportedExtension, "connection_id unasked");
      }
      if (hello.connectionId.length > MAX_CID_LENGTH) {
        throw new ProtocolError(AlertDescription.IllegalParameter, "Connection ID too long");
      }
      this.#host.useConnectionIds(ours.length === 0 ? undefined : ours, hello.connectionId.slice());
    }
    // RFC 8446 §7.1: without a PSK the early secret is extracted from zeros.
    const early = hkdfExtract(
      provider,
      hash,
      new Uint8Array(0),
      chosen?.key ?? new Uint8Array(hashLength(hash)),
    );
    const handshakeSecret = hkdfExtract(
      provider,
      hash,
      derivedSecret(provider, hash, early),
      shared,
    );
    const helloHash = transcript.digest();
    this.#clientHandshakeSecret = deriveSecret(
      provider,
      hash,
      handshakeSecret,
      "c hs traffic",
      helloHash,
    );
    this.#serverHandshakeSecret = deriveSecret(
      provider,
      hash,
      handshakeSecret,
      "s hs traffic",
      helloHash,
    );
    this.#handshakeSecret = handshakeSecret;
    this.#host.useSuite(suite);
    this.#host.installRead(2, this.#serverHandshakeSecret);
    this.#host.installWrite(2, this.#clientHandshakeSecret);
    this.#host.flightAnswered();
    this.#stage = "encrypted_extensions";
  }

  #onEncryptedExtensions(body: Uint8Array): void {
    try {
      const extensions = decodeEncryptedExtensions(body);
      if (findExtension(extensions, ExtensionType13.EarlyData) !== undefined) {
        throw new ProtocolError(
          AlertDescription.UnsupportedExtension,
          "early_data accepted unasked",
        );
      }
      if (findExtension(extensions, ExtensionType.ConnectionId) !== undefined) {
        throw new ProtocolError(
          AlertDescription.IllegalParameter,
          "connection_id in EncryptedExtensions (RFC 9147 §9: the ServerHello's)",
        );
      }
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode EncryptedExtensions");
      }
      throw error;
    }
    this.#transcript!.update(transcriptMessage(HandshakeType13.EncryptedExtensions, body));
    this.#stage = this.#chosen === undefined ? "certificate" : "finished";
  }

  #onCertificateRequest(body: Uint8Array): void {
    try {
      const requested = decodeCertificateRequest13(body);
      if (requested === undefined) {
        throw new ProtocolError(
          AlertDescription.MissingExtension,
          "CertificateRequest without signature_algorithms",
        );
      }
      this.#requested = requested;
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode CertificateRequest");
      }
      throw error;
    }
    this.#transcript!.update(transcriptMessage(HandshakeType.CertificateRequest, body));
  }

  /**
   * Our answer to a CertificateRequest (RFC 8446 §4.4.2): our chain and its
   * CertificateVerify, when we have a certificate whose key signs a scheme
   * the server takes; else an empty Certificate.
   */
  #clientAuthentication(): OutgoingMessage13[] {
    const requested = this.#requested;
    if (requested === undefined) return [];
    const transcript = this.#transcript!;
    const own = this.#options.certificate;
    const scheme = own === undefined
      ? undefined
      : schemes13(own.key).find((s) => requested.includes(SignatureSchemeCode[s]));
    const chain = encodeCertificate13(scheme === undefined ? [] : own!.chain);
    transcript.update(transcriptMessage(HandshakeType.Certificate, chain));
    const messages: OutgoingMessage13[] = [
      { epoch: 2, msgType: HandshakeType.Certificate, body: chain },
    ];
    if (scheme !== undefined) {
      const signature = own!.key.sign(scheme, signatureContent("client", transcript.digest()));
      const verify = encodeCertificateVerify({ scheme: SignatureSchemeCode[scheme], signature });
      transcript.update(transcriptMessage(HandshakeType.CertificateVerify, verify));
      messages.push({ epoch: 2, msgType: HandshakeType.CertificateVerify, body: verify });
    }
    return messages;
  }

  #onCertificate(body: Uint8Array): void {
    const chain = readCertificate13(body, "server");
    if (chain.length === 0) {
      throw new ProtocolError(AlertDescription.DecodeError, "Server sent no certificate");
    }
    const verdict = this.#options.verifyServer!(chain, this.#host.now);
    if (!verdict.ok) {
      throw new ProtocolError(
        VERDICT_ALERTS[verdict.alert],
        `Server certificate refused: ${verdict.reason}`,
      );
    }
    this.#serverKey = verdict.spki;
    this.#transcript!.update(transcriptMessage(HandshakeType.Certificate, body));
    this.#stage = "certificate_verify";
  }

  #onCertificateVerify(body: Uint8Array): void {
    const transcript = this.#transcript!;
    checkCertificateVerify13(body, "server", this.#serverKey!, transcript.digest());
    transcript.update(transcriptMessage(HandshakeType.CertificateVerify, body));
    this.#stage = "finished";
  }

  #onFinished(body: Uint8Array): void {
    const { provider } = this.#host.config;
    const suite = this.#suite!;
    const hash = suite.hash;
    const transcript = this.#transcript!;
    const expected = finishedMac(
      provider,
      hash,
      finishedKey(provider, hash, this.#serverHandshakeSecret!),
      transcript.digest(),
    );
    if (!constantTimeEqual(expected, body)) {
      throw new ProtocolError(AlertDescription.DecryptError, "Server Finished does not verify");
    }
    transcript.update(transcriptMessage(HandshakeType.Finished, body));
    const zeros = new Uint8Array(hashLength(hash));
    const master = hkdfExtract(
      provider,
      hash,
      derivedSecret(provider, hash, this.#handshakeSecret!),
      zeros,
    );
    const serverFinishedHash = transcript.digest();
    const authentication = this.#clientAuthentication();
    const clientFinished = finishedMac(
      provider,
      hash,
      finishedKey(provider, hash, this.#clientHandshakeSecret!),
      transcript.digest(),
    );
    const host = this.#host;
    host.sendFlight([
      ...authentication,
      { epoch: 2, msgType: HandshakeType.Finished, body: clientFinished },
    ]);
    transcript.update(transcriptMessage(HandshakeType.Finished, clientFinished));
    this.#resumptionSecret = deriveSecret(
      provider,
      hash,
      master,
      "res master",
      transcript.digest(),
    );
    host.installRead(3, deriveSecret(provider, hash, master, "s ap traffic", serverFinishedHash));
    host.installWrite(3, deriveSecret(provider, hash, master, "c ap traffic", serverFinishedHash));
    this.#stage = "done";
    this.#handshakeSecret = undefined;
    const chosen = this.#chosen;
    const identity = chosen === undefined || chosen.resumption
      ? new Uint8Array(0)
      : chosen.identity;
    host.emit({
      type: "handshake_complete",
      suite: suite.name,
      version: "DTLS 1.3",
      identity: new TextDecoder().decode(identity),
      identityBytes: identity,
      extendedMasterSecret: true,
      encryptThenMac: false,
      group: this.#group,
      ...(chosen?.resumption ? { resumed: "ticket" as const } : {}),
    });
    host.established();
  }

  /** A ticket: its resumption PSK (RFC 8446 §4.6.1), for the owner to resume with. */
  #onNewSessionTicket(body: Uint8Array): void {
    let ticket;
    try {
      ticket = decodeNewSessionTicket13(body);
    } catch (error) {
      if (error instanceof DecodeError) {
        throw new ProtocolError(AlertDescription.DecodeError, "Cannot decode NewSessionTicket");
      }
      throw error;
    }
    const secret = this.#resumptionSecret;
    // A lifetime of zero: do not keep it (RFC 8446 §4.6.1).
    if (secret === undefined || ticket.lifetime === 0) return;
    if (ticket.lifetime > 604_800) {
      throw new ProtocolError(AlertDescription.IllegalParameter, "Ticket lifetime over 7 days");
    }
    const { provider } = this.#host.config;
    const suite = this.#suite!;
    const psk = hkdfExpandLabel(
      provider,
      suite.hash,
      secret,
      "resumption",
      ticket.nonce,
      hashLength(suite.hash),
    );
    const now = this.#host.now;
    this.#host.emit({
      type: "resumable_session",
      session: {
        sessionId: new Uint8Array(0),
        ticket: ticket.ticket.slice(),
        suiteId: suite.id,
        masterSecret: psk,
        extendedMasterSecret: true,
        encryptThenMac: false,
        ticketAgeAdd: ticket.ageAdd,
        receivedAt: now,
        expiresAt: now + ticket.lifetime * 1000,
      },
    });
  }
}
