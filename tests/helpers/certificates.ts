/**
 * Certificate options for in-process handshakes, from the test PKI
 * (tests/helpers/pki.ts): the server's certificate as the shell would load
 * it, and a client that trusts the test CA and expects `localhost`.
 */
import { nodeProvider } from "../../src/crypto/node.ts";
import type { ClientHandshakeOptions } from "../../src/handshake/client.ts";
import type { ServerHandshakeOptions } from "../../src/handshake/server.ts";
import { chainVerifier } from "../../src/pki/chain_verifier.ts";
import { loadServerCertificate, pemBlocks } from "../../src/pki/server_certificate.ts";
import { testPki } from "./pki.ts";

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

/** The command-line flags of a server with the certificate in `certFile` and its key. */
export function certificateArgs(certFile: string, keyFile: string): string[] {
  return ["--cert", certFile, "--key", keyFile];
}
