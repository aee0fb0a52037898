/**
 * The client command: the counterpart of Qt's DTLS client example and of
 * `openssl s_client`. Connects, prints the negotiated suite, sends each
 * message and prints each reply.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DtlsClient } from "../client/dtls_client.ts";
import {
  CERTIFICATE_SUITES,
  CIPHER_SUITES,
  type CipherSuite,
  PSK_SUITES,
  suiteByName,
} from "../record/suites.ts";
import { loadPublicKeys, loadServerCertificate, pemBlocks } from "../pki/server_certificate.ts";
import { nodeProvider } from "../crypto/node.ts";
import type { CertificateWithKey } from "../handshake/driver.ts";
import { DEMO_CLIENT_IDENTITY, DEMO_KEY_HEX, parseHexKey } from "../server/psk_store.ts";

/** Usage of the client command. */
export const CLIENT_USAGE = `Usage: dtls-server client --connect HOST:PORT [options]
  --connect HOST:PORT   server to connect to ([::1]:4433 for IPv6)
  --psk-identity ID     PSK identity (default: the Qt example's, "${DEMO_CLIENT_IDENTITY}")
  --psk-key HEX         the key as hex, or DTLS_CLIENT_PSK_KEY (default: the demo key)
  --ca FILE             PEM certificates to trust (a CA bundle, or the server's own):
                        offers the certificate suites (and PSK ones only with --psk-key)
                        and verifies the server's chain
  --server-name NAME    the name the server's certificate must carry (default: HOST)
  --server-key FILE     PEM public key to pin: the server's raw key (RFC 7250) must be it
  --cert FILE --key FILE  our certificate chain and key, for a server that asks for one
  --message TEXT        what to send (default "Message #N")
  --count N             how many messages (default 1)
  --cipher NAME         offer only this suite (IANA name, DTLS 1.2); default: all
  --dtls VERSION        1.2 (default) or 1.3: with 1.3, the PSK is offered and,
                        with --ca, the server's certificate taken too
  --timeout SECONDS     per step (default 10)`;

/** Runs the client command; returns the exit code. */
export async function runClient(
  args: readonly string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
  print: (line: string) => void = (line) => console.log(line),
): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args: [...args],
      strict: true,
      options: {
        connect: { type: "string" },
        "psk-identity": { type: "string" },
        "psk-key": { type: "string" },
        ca: { type: "string" },
        "server-name": { type: "string" },
        "server-key": { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        message: { type: "string" },
        count: { type: "string", default: "1" },
        cipher: { type: "string" },
        dtls: { type: "string", default: "1.2" },
        timeout: { type: "string", default: "10" },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (error) {
    console.error(
      `${error instanceof Error ? error.message.split("\n")[0] : error}\n${CLIENT_USAGE}`,
    );
    return 2;
  }
  if (v.help) {
    print(CLIENT_USAGE);
    return 0;
  }
  const target = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v.connect ?? "");
  if (!target || Number(target[3]) > 65535) {
    console.error(`Cannot use --connect ${v.connect ?? "(missing)"}: expected HOST:PORT`);
    return 2;
  }
  // Without keys the client is the Qt example's, as the server without a
  // key file is: `deno task start` and `client --connect 127.0.0.1:4433` talk.
  const identity = v["psk-identity"] ?? DEMO_CLIENT_IDENTITY;
  let psk: Uint8Array;
  // --ca asks for the server's certificate: its suites, and PSK ones too only
  // when a key was given as well.
  const givenKey = v["psk-key"] !== undefined || env("DTLS_CLIENT_PSK_KEY") !== undefined;
  let suites: readonly CipherSuite[] = v.ca === undefined && v["server-key"] === undefined
    ? PSK_SUITES
    : givenKey
    ? CIPHER_SUITES
    : CERTIFICATE_SUITES;
  let ca: Uint8Array[] | undefined;
  let serverKeys: Uint8Array[] | undefined;
  let certificate: CertificateWithKey | undefined;
  const count = Number(v.count);
  const timeoutMs = Number(v.timeout) * 1000;
  try {
    psk = parseHexKey(v["psk-key"] ?? env("DTLS_CLIENT_PSK_KEY") ?? DEMO_KEY_HEX, "--psk-key");
    if (v.cipher !== undefined) suites = [suiteByName(v.cipher)];
    if ((v.cert === undefined) !== (v.key === undefined)) {
      throw new Error("Cannot use --cert or --key alone: give both");
    }
    if (v.cert !== undefined) {
      certificate = loadServerCertificate(
        Deno.readTextFileSync(v.cert),
        Deno.readTextFileSync(v.key!),
        nodeProvider,
        Date.now(),
      ).certificate;
    }
    if (v["server-key"] !== undefined) {
      serverKeys = loadPublicKeys(
        Deno.readTextFileSync(v["server-key"]),
        `--server-key ${v["server-key"]}`,
      );
    }
    if (v.ca !== undefined) {
      ca = pemBlocks(Deno.readTextFileSync(v.ca), "CERTIFICATE");
      if (ca.length === 0) throw new Error(`Cannot use --ca ${v.ca}: no PEM certificate in it`);
    }
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 2;
  }
  if (v.dtls !== "1.2" && v.dtls !== "1.3") {
    console.error(`Cannot use --dtls ${v.dtls}: expected 1.2 or 1.3`);
    return 2;
  }
  if (!Number.isInteger(count) || count < 1) {
    console.error(`Cannot use --count ${v.count}: expected a positive integer`);
    return 2;
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    console.error(`Cannot use --timeout ${v.timeout}: expected seconds`);
    return 2;
  }
  const client = new DtlsClient({
    hostname: target[1] ?? target[2]!,
    port: Number(target[3]),
    identity,
    psk,
    suites,
    ...(ca === undefined ? {} : { ca }),
    ...(serverKeys === undefined ? {} : { serverKeys }),
    ...(certificate === undefined ? {} : { certificate }),
    ...(v["server-name"] === undefined ? {} : { serverName: v["server-name"] }),
    version: v.dtls,
    offerPsk: givenKey || (v.ca === undefined && v["server-key"] === undefined),
  });
  try {
    const session = await client.connect(timeoutMs);
    print(`connected: ${session.suite}, ${session.version}`);
    for (let i = 1; i <= count; i++) {
      client.send(v.message ?? `Message #${i}`);
      print(new TextDecoder().decode(await client.receive(timeoutMs)));
    }
    return 0;
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return 1;
  } finally {
    await client.close();
  }
}

/** `health URL`: exit 0 when the URL answers 200 (for container health checks). */
export async function runHealth(args: readonly string[]): Promise<number> {
  const url = args[0];
  if (url === undefined) {
    console.error("Usage: dtls-server health URL");
    return 2;
  }
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await response.body?.cancel();
    return response.status === 200 ? 0 : 1;
  } catch (error) {
    console.error(`Cannot reach ${url}: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}
