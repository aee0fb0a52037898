/**
 * Peers built from Debian 13 source packages by `.ci/debian13-peers` into
 * `$DTLS_PEERS_DIR` (default `~/.cache/dtls-peers`): what Debian 12 lacks.
 * A peer not built makes its tests skip, saying how to build it.
 */

/** A peer program that may be missing. */
export interface OptionalPeer {
  /** True when the program is not there (the reason was printed). */
  readonly ignore: boolean;
  /** The program's path; throws when it is missing. */
  client(): string;
}

/** Where .ci/debian13-peers puts its builds. */
export function peersDir(): string {
  return Deno.env.get("DTLS_PEERS_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/dtls-peers`;
}

function optionalPeer(name: string, relative: string, build: string): OptionalPeer {
  const path = `${peersDir()}/${relative}`;
  let present = false;
  try {
    present = Deno.statSync(path).isFile;
  } catch {
    present = false;
  }
  if (!present) {
    console.log(`skip: ${name} not built at ${path} (run: bash .ci/debian13-peers ${build})`);
  }
  return {
    ignore: !present,
    client: () => {
      if (!present) throw new Error(`${name} not built at ${path}`);
      return path;
    },
  };
}

/** Mbed TLS 3.6's ssl_client2: RFC 9146 Connection ID, tickets, resumption. */
export const mbedtls36: OptionalPeer = optionalPeer(
  "Mbed TLS 3.6 ssl_client2",
  "mbedtls/programs/ssl/ssl_client2",
  "mbedtls",
);

/**
 * wolfSSL 5.7's example client, built with DTLS 1.3 (RFC 9147), external
 * PSKs and CIDs; run it from {@link wolfsslRoot}, as it reads `certs/`.
 */
export const wolfssl57: OptionalPeer = optionalPeer(
  "wolfSSL 5.7 example client",
  "wolfssl/b/examples/client/client",
  "wolfssl",
);

/** The wolfSSL source tree its example programs run from. */
export function wolfsslRoot(): string {
  return `${peersDir()}/wolfssl`;
}
