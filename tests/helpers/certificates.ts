/**
 * Certificate options for in-process handshakes, from the test PKI
 * (tests/helpers/pki.ts): the server's certificate as the shell would load
 * it, and a client that trusts the test CA and expects `localhost`.
 */
import { Connection } from "../../src/connection/connection.ts";
import { connectionConfig } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { ClientHandshake, type ClientHandshakeOptions } from "../../src/handshake/client.ts";
import type { ChainCheck, HandshakeHost } from "../../src/handshake/driver.ts";
import type { FlightItem } from "../../src/handshake/flight.ts";
import type { ServerHandshakeOptions } from "../../src/handshake/server.ts";
import { chainVerifier } from "../../src/pki/chain_verifier.ts";
import { loadServerCertificate, pemBlocks } from "../../src/pki/server_certificate.ts";
import { CIPHER_SUITES, suiteByName } from "../../src/record/suites.ts";
import { testPki } from "./pki.ts";
import { seededRandom } from "./random.ts";
import { clientPsk } from "./sim.ts";

/** A time every test certificate is valid at: a minute from now (they are made, when first asked for, for 30 days). */
export const CERT_TIME = Date.now() + 60_000;

/** Server options carrying the certificate in `certFile` / `keyFile`. */
export function serverCertificate(
  certFile: string,
  keyFile: string,
): Partial<ServerHandshakeOptions> {
  const { certificate } = loadServerCertificate(
    Deno.readTextFileSync(certFile),
    Deno.readTextFileSync(keyFile),
    nodeProvider,
    CERT_TIME,
  );
  return { certificate: () => certificate };
}

/** Client options trusting `caFile` (default: the test CA) for `serverName`. */
export function trustingClient(
  caFile = testPki().caCert,
  serverName: string | undefined = "localhost",
): Partial<ClientHandshakeOptions> {
  return {
    verifyServer: chainVerifier({
      anchors: pemBlocks(Deno.readTextFileSync(caFile), "CERTIFICATE"),
      ...(serverName === undefined ? {} : { serverName }),
    }),
  };
}

/** Client options presenting the certificate in `certFile` / `keyFile` when asked. */
export function clientCertificate(
  certFile: string,
  keyFile: string,
): Partial<ClientHandshakeOptions> {
  const { certificate } = loadServerCertificate(
    Deno.readTextFileSync(certFile),
    Deno.readTextFileSync(keyFile),
    nodeProvider,
    CERT_TIME,
  );
  return { certificate };
}

/** The server's check of a client's chain: issued by the test CA for client use. */
export function testCaClientCheck(): ChainCheck {
  return chainVerifier({
    anchors: pemBlocks(Deno.readTextFileSync(testPki().caCert), "CERTIFICATE"),
    purpose: "client",
  });
}

/**
 * Server options of a certificate server (the test EC certificate, every
 * suite) that asks for a client certificate from the test CA.
 */
export function clientAuthServer(required = true): Partial<ServerHandshakeOptions> {
  const pki = testPki();
  return {
    ...serverCertificate(pki.ecCert, pki.ecKey),
    suites: CIPHER_SUITES,
    clientAuth: { check: testCaClientCheck(), required },
  };
}

/**
 * Our client, presenting the test client certificate over
 * ECDHE-ECDSA-AES128-GCM, whose every flight passes through `editFlight`
 * before it is sealed: how a test plays a client that misbehaves in one
 * message.
 */
export function flightEditingClient(
  seed: string,
  editFlight: (items: FlightItem[]) => FlightItem[],
): Connection {
  const pki = testPki();
  const options = {
    ...clientPsk({ suites: [suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")] }),
    ...trustingClient(),
    ...clientCertificate(pki.clientCert, pki.clientKey),
  };
  return new Connection(connectionConfig(nobleProvider, seededRandom(seed)), CERT_TIME, {
    driver: (host) => new ClientHandshake(editingHost(host, editFlight), options),
  });
}

/** `host` with every flight sent through `editFlight` first. */
function editingHost(
  host: HandshakeHost,
  editFlight: (items: FlightItem[]) => FlightItem[],
): HandshakeHost {
  return {
    get config() {
      return host.config;
    },
    get now() {
      return host.now;
    },
    get inbound() {
      return host.inbound;
    },
    sendFlight: (items, armTimer) => host.sendFlight(editFlight(items), armTimer),
    resendFlight: () => host.resendFlight(),
    disarmTimer: () => host.disarmTimer(),
    setPendingRead: (p) => host.setPendingRead(p),
    activatePendingRead: () => host.activatePendingRead(),
    peekHeldHandshakes: () => host.peekHeldHandshakes(),
    setWrite: (e, p) => host.setWrite(e, p),
    emit: (e) => host.emit(e),
    sendWarning: (d) => host.sendWarning(d),
    established: () => host.established(),
    useConnectionId: (cid) => host.useConnectionId(cid),
  };
}

/** The command-line flags of a server with the certificate in `certFile` and its key. */
export function certificateArgs(certFile: string, keyFile: string): string[] {
  return ["--cert", certFile, "--key", keyFile];
}
