/**
 * The server command: settings → keys → logging → server → signals.
 *
 * @module
 */

import {
  ConfigError,
  isLoopback,
  resolveSettings,
  type ServerSettings,
  usage,
} from "../server/config.ts";
import { nobleProvider } from "../crypto/noble.ts";
import { CERTIFICATE_SUITES } from "../record/suites.ts";
import type { CryptoProvider } from "../crypto/provider.ts";
import type { ClientAuthPolicy, ServerCertificate } from "../handshake/server.ts";
import {
  CertificateError,
  type CertificateSummary,
  loadPublicKeys,
  loadServerCertificate,
  pemBlocks,
} from "../pki/server_certificate.ts";
import { chainVerifier } from "../pki/chain_verifier.ts";
import { nodeProvider } from "../crypto/node.ts";
import { DtlsServer, openKeyLog } from "../server/dtls_server.ts";
import type { DtlsVersion } from "../connection/endpoint.ts";
import { configureLogging, type Logger, LogtapeLogger } from "../server/log.ts";
import { type MetricsServer, serveMetrics } from "../server/metrics.ts";
import { demoPskStore, mapPskStore, parsePskFile, type PskStore } from "../server/psk_store.ts";
import { parseTicketKeyFile } from "../session/tickets.ts";

/**
 * The certificate from --cert and --key, when given, checked against the
 * clock; at start and again on SIGHUP.
 */
export function loadCertificate(
  settings: ServerSettings,
  provider: CryptoProvider,
): { certificate: ServerCertificate; summary: CertificateSummary } | undefined {
  if (settings.cert === undefined || settings.key === undefined) return undefined;
  const read = (flag: string, path: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (error) {
      throw new ConfigError(
        `Cannot read ${flag} ${path}: ${error instanceof Error ? error.message : error}`,
      );
    }
  };
  try {
    return loadServerCertificate(
      read("--cert", settings.cert),
      read("--key", settings.key),
      provider,
      Date.now(),
      { cert: `--cert ${settings.cert}`, key: `--key ${settings.key}` },
    );
  } catch (error) {
    if (error instanceof CertificateError) throw new ConfigError(error.message);
    throw error;
  }
}

/** The client authentication of --client-ca, --client-keys and --client-auth. */
function clientAuthPolicy(
  settings: ServerSettings,
  clientCa: Uint8Array[] | undefined,
  clientKeys: Uint8Array[] | undefined,
  provider: CryptoProvider,
): ClientAuthPolicy {
  const required = settings.clientAuth === "require";
  return {
    ...(clientCa === undefined ? {} : {
      check: chainVerifier({ anchors: clientCa, purpose: "client" }),
    }),
    ...(clientKeys === undefined ? {} : { rawKeys: clientKeys }),
    required,
    id: clientAuthId(provider, required, clientCa ?? [], clientKeys ?? []),
  };
}

/**
 * SHA-256 over what a client authentication policy trusts, each item
 * length-prefixed: instances with the same --client-ca, --client-keys and
 * --client-auth agree on it, and a reload that changes them changes it
 * (sessions a certificate authenticated resume only under the same id).
 */
function clientAuthId(
  provider: CryptoProvider,
  required: boolean,
  cas: readonly Uint8Array[],
  keys: readonly Uint8Array[],
): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([required ? 1 : 0, cas.length, keys.length])];
  for (const item of [...cas, ...keys]) {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, item.length);
    parts.push(length, item);
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return provider.hash("sha256", all);
}

/** The raw public keys of --client-keys, DER SubjectPublicKeyInfo; undefined without it. */
function loadClientKeys(settings: ServerSettings): Uint8Array[] | undefined {
  if (settings.clientKeys === undefined) return undefined;
  if (settings.cert === undefined) {
    throw new ConfigError(
      "Cannot use --client-keys without --cert: only certificate suites ask for one",
    );
  }
  try {
    return loadPublicKeys(
      Deno.readTextFileSync(settings.clientKeys),
      `--client-keys ${settings.clientKeys}`,
    );
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

/** The CAs of --client-ca, DER; undefined without it. */
function loadClientCa(settings: ServerSettings): Uint8Array[] | undefined {
  if (settings.clientCa === undefined) return undefined;
  if (settings.cert === undefined) {
    throw new ConfigError(
      "Cannot use --client-ca without --cert: only certificate suites ask for one",
    );
  }
  let anchors: Uint8Array[];
  try {
    anchors = pemBlocks(Deno.readTextFileSync(settings.clientCa), "CERTIFICATE");
    chainVerifier({ anchors });
  } catch (error) {
    throw new ConfigError(
      `Cannot use --client-ca ${settings.clientCa}: ${
        error instanceof Error ? error.message : error
      }`,
    );
  }
  if (anchors.length === 0) {
    throw new ConfigError(`Cannot use --client-ca ${settings.clientCa}: no PEM certificate in it`);
  }
  return anchors;
}

/** Throws a ConfigError unless the key log can be opened safely (see `openKeyLog`). */
function checkKeyLog(path: string): void {
  try {
    openKeyLog(path).close();
  } catch (error) {
    throw new ConfigError(
      `Cannot write --keylog ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
}

/**
 * Where the keys come from, decided once at start and again on SIGHUP:
 * undefined for a server given a certificate and no keys, which serves the
 * certificate suites only (the demo key is for a server with nothing else).
 */
export function loadKeys(
  settings: ServerSettings,
  env: (name: string) => string | undefined,
): PskStore | undefined {
  if (settings.pskFile !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(settings.pskFile);
    } catch (error) {
      throw new ConfigError(
        `Cannot read --psk-file ${settings.pskFile}: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
    return mapPskStore(parseKeys(text, `--psk-file ${settings.pskFile}`));
  }
  const fromEnv = env("DTLS_SERVER_PSK_KEYS");
  if (fromEnv !== undefined) {
    return mapPskStore(parseKeys(fromEnv.replaceAll(",", "\n"), "DTLS_SERVER_PSK_KEYS"));
  }
  if (settings.cert !== undefined) return undefined;
  if (!isLoopback(settings.address) && !settings.allowDemoKey) {
    throw new ConfigError(
      `Cannot use the demo key on non-loopback address ${settings.address}: give --psk-file, or --allow-demo-key to insist`,
    );
  }
  return demoPskStore();
}

/**
 * The permission bits of `path` when group or others have any access to it,
 * else undefined; undefined also where there are no such bits (Windows) or
 * the file cannot be read (loading it reports that).
 */
export function openKeyFileMode(path: string): number | undefined {
  let mode: number | null;
  try {
    mode = Deno.statSync(path).mode;
  } catch {
    return undefined;
  }
  if (mode === null || Deno.build.os === "windows") return undefined;
  return (mode & 0o077) !== 0 ? mode & 0o777 : undefined;
}

/**
 * Warns, as ssh does of a private key, when the key file is open to group or
 * others: any local user who can read it can impersonate every identity in
 * it. The server still starts; the keys are the operator's to protect.
 */
function warnOpenKeyFile(logger: Logger, settings: ServerSettings): void {
  for (const file of [settings.pskFile, settings.key, settings.ticketKeyFile]) {
    if (file === undefined) continue;
    const mode = openKeyFileMode(file);
    if (mode === undefined) continue;
    const octal = mode.toString(8).padStart(4, "0");
    logger.log(
      "warning",
      "key_file_permissions",
      `Key file ${file} is open to group or others (mode ${octal}): ` +
        `its keys should be readable by the server alone (chmod 600 ${file})`,
      { file, mode: octal },
    );
  }
}

/** The secrets of --ticket-key-file, or undefined without it (each process makes its own). */
export function loadTicketKeys(settings: ServerSettings): Uint8Array[] | undefined {
  const path = settings.ticketKeyFile;
  if (path === undefined) return undefined;
  if (!settings.tickets) {
    throw new ConfigError("Cannot use --ticket-key-file with --no-tickets");
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(
      `Cannot read --ticket-key-file ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
  try {
    return parseTicketKeyFile(text, `--ticket-key-file ${path}`);
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

function parseKeys(text: string, source: string): Map<string, Uint8Array> {
  try {
    return parsePskFile(text, source);
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
}

/** Runs the server until SIGINT / SIGTERM. Returns the exit code. */
export async function runServer(
  args: readonly string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<number> {
  let settings: ServerSettings;
  let psk: PskStore | undefined;
  let certificate: ReturnType<typeof loadCertificate>;
  let clientCa: Uint8Array[] | undefined;
  let clientKeys: Uint8Array[] | undefined;
  let ticketKeys: Uint8Array[] | undefined;
  let provider: CryptoProvider;
  try {
    settings = resolveSettings(args, env);
    provider = settings.crypto === "noble" ? nobleProvider : nodeProvider;
    psk = loadKeys(settings, env);
    certificate = loadCertificate(settings, provider);
    if (settings.keylog !== undefined) checkKeyLog(settings.keylog);
    clientCa = loadClientCa(settings);
    clientKeys = loadClientKeys(settings);
    ticketKeys = loadTicketKeys(settings);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`${error.message}\n(see --help)`);
    return 2;
  }
  configureLogging({ format: settings.logFormat, level: settings.logLevel });
  const logger = new LogtapeLogger();
  if (psk === undefined) {
    logger.log(
      "info",
      "certificate_only",
      "No PSK keys given: serving the certificate suites only",
    );
  } else if (psk.kind === "demo") {
    logger.log(
      "warning",
      "demo_key",
      "No keys given: every identity gets the Qt example's demo key (use --psk-file for real keys)",
    );
  } else {
    logger.log("info", "keys_loaded", `Loaded ${psk.size} PSK identities`, {
      identities: psk.size,
    });
  }
  warnOpenKeyFile(logger, settings);
  if (settings.keylog !== undefined) {
    logger.log(
      "warning",
      "keylog_enabled",
      `Writing every session's master secret to ${settings.keylog} (--keylog): ` +
        "anyone who reads it can decrypt the traffic; for debugging only",
      { file: settings.keylog },
    );
  }
  if (certificate !== undefined) logCertificate(logger, "certificate_loaded", certificate.summary);
  if (ticketKeys !== undefined) {
    logger.log(
      "info",
      "ticket_keys_loaded",
      `Loaded ${ticketKeys.length} session ticket keys from ${settings.ticketKeyFile}`,
      { keys: ticketKeys.length, file: settings.ticketKeyFile },
    );
  }
  /** What is served now: replaced by a reload; watched for its expiry. */
  let served = certificate?.summary;

  const server = new DtlsServer({
    address: settings.address,
    port: settings.port,
    // Without keys, an empty store: no identity is known, and only the
    // certificate suites are offered, so no PSK handshake is even begun.
    psk: psk ?? mapPskStore(new Map()),
    ...(settings.keylog === undefined ? {} : { keyLogFile: settings.keylog }),
    ...(clientCa === undefined && clientKeys === undefined ? {} : {
      clientAuth: clientAuthPolicy(settings, clientCa, clientKeys, provider),
    }),
    ...(psk === undefined ? { suites: CERTIFICATE_SUITES } : {}),
    ...(certificate === undefined ? {} : { certificate: certificate.certificate }),
    identityHint: settings.identityHint,
    tickets: settings.tickets,
    ...(ticketKeys === undefined ? {} : { ticketKeys }),
    sessionLifetimeMs: settings.sessionLifetimeMs,
    sessionCacheSize: settings.sessionCacheSize,
    cidLength: settings.cidLength,
    versions: settings.versions.split(",") as DtlsVersion[],
    mtu: settings.mtu,
    maxConnections: settings.maxConnections,
    handshakeTimeoutMs: settings.handshakeTimeoutMs,
    idleTimeoutMs: settings.idleTimeoutMs,
    maxHalfOpen: settings.maxHalfOpen,
    handshakeRate: settings.handshakeRate,
    handshakeBurst: settings.handshakeBurst,
    maxHandshakeMessage: settings.maxHandshakeMessage,
    maxReassemblyPerHandshake: settings.maxReassemblyPerHandshake,
    maxReassemblyTotal: settings.maxReassemblyTotal,
    maxReassemblyPerSource: settings.maxReassemblyPerSource,
    refusalLogIntervalMs: settings.refusalLogIntervalMs,
    provider,
    io: settings.io,
    ...(settings.receiveBuffer === undefined ? {} : { receiveBuffer: settings.receiveBuffer }),
    logger,
    ...(settings.logPlaintext === undefined ? {} : { logPlaintext: settings.logPlaintext }),
  });
  // Signal handlers first: a SIGTERM that arrives as soon as we report
  // `listening` must still reach every peer as close_notify, and a SIGHUP
  // must reload the keys, not end the process (its default action).
  const reload = () => {
    warnOpenKeyFile(logger, settings);
    try {
      const keys = loadKeys(settings, env);
      if (keys !== undefined) server.setPskStore(keys);
      server.metrics.inc("dtls_psk_reloads_total", { result: "ok" });
      if (keys !== undefined) {
        logger.log("info", "keys_reloaded", `Reloaded keys: ${keys.size} PSK identities`, {
          identities: keys.size,
        });
      }
    } catch (error) {
      server.metrics.inc("dtls_psk_reloads_total", { result: "error" });
      logger.log(
        "error",
        "keys_reload_failed",
        `Kept the old keys: ${error instanceof Error ? error.message : error}`,
      );
    }
    if (settings.ticketKeyFile !== undefined && settings.sessionLifetimeMs > 0) {
      // Ticket keys rotate: the new first key seals, every listed key still opens.
      try {
        const secrets = loadTicketKeys(settings)!;
        server.setTicketKeys(secrets);
        server.metrics.inc("dtls_ticket_key_reloads_total", { result: "ok" });
        logger.log(
          "info",
          "ticket_keys_reloaded",
          `Reloaded ${secrets.length} session ticket keys`,
          { keys: secrets.length },
        );
      } catch (error) {
        server.metrics.inc("dtls_ticket_key_reloads_total", { result: "error" });
        logger.log(
          "error",
          "ticket_keys_reload_failed",
          `Kept the old ticket keys: ${error instanceof Error ? error.message : error}`,
        );
      }
    }
    if (settings.cert === undefined) return;
    if (settings.clientCa !== undefined || settings.clientKeys !== undefined) {
      // Who may log in: a key or CA taken out of its file stops working now.
      try {
        const ca = loadClientCa(settings);
        const keys = loadClientKeys(settings);
        server.setClientAuth(clientAuthPolicy(settings, ca, keys, provider));
        server.metrics.inc("dtls_client_auth_reloads_total", { result: "ok" });
        logger.log(
          "info",
          "client_auth_reloaded",
          `Reloaded client authentication: ${ca?.length ?? 0} CAs, ${keys?.length ?? 0} raw keys`,
          { cas: ca?.length ?? 0, rawKeys: keys?.length ?? 0 },
        );
      } catch (error) {
        server.metrics.inc("dtls_client_auth_reloads_total", { result: "error" });
        logger.log(
          "error",
          "client_auth_reload_failed",
          `Kept the old client authentication: ${error instanceof Error ? error.message : error}`,
        );
      }
    }
    try {
      const loaded = loadCertificate(settings, provider)!;
      server.setCertificate(loaded.certificate);
      served = loaded.summary;
      server.metrics.inc("dtls_certificate_reloads_total", { result: "ok" });
      logCertificate(logger, "certificate_reloaded", loaded.summary);
    } catch (error) {
      server.metrics.inc("dtls_certificate_reloads_total", { result: "error" });
      logger.log(
        "error",
        "certificate_reload_failed",
        `Kept the old certificate: ${error instanceof Error ? error.message : error}`,
      );
    }
  };
  // A certificate that runs out while the server runs is still served (a
  // peer that pins it may not care), but said loudly, ahead of time too.
  let expiryTimer: ReturnType<typeof setTimeout> | undefined;
  if (served !== undefined) {
    server.metrics.gauge(
      "dtls_certificate_expiry_timestamp_seconds",
      () => Math.floor((served?.notAfter ?? 0) / 1000),
    );
    // Hourly, and just after the moment it runs out.
    const check = () => {
      if (served === undefined) return;
      const now = Date.now();
      warnExpiry(logger, served, now);
      const untilExpiry = served.notAfter - now;
      const next = untilExpiry >= 0
        ? Math.min(EXPIRY_CHECK_MS, untilExpiry + 1_000)
        : EXPIRY_CHECK_MS;
      expiryTimer = setTimeout(check, next);
      Deno.unrefTimer(expiryTimer);
    };
    check();
  }
  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGHUP", reload);
  try {
    server.listen();
  } catch (error) {
    console.error(
      `Cannot listen on --address ${settings.address} --port ${settings.port}: ${
        error instanceof Error ? error.message : error
      }`,
    );
    return 1;
  }

  let metrics: MetricsServer | undefined;
  if (settings.metrics !== undefined) {
    try {
      metrics = await serveMetrics(server.metrics, {
        ...settings.metrics,
        healthy: () => server.isListening,
      });
    } catch (error) {
      await server.close();
      console.error(
        `Cannot serve --metrics ${settings.metrics.hostname}:${settings.metrics.port}: ${
          error instanceof Error ? error.message : error
        }`,
      );
      return 1;
    }
    logger.log(
      "info",
      "metrics_listening",
      `Metrics on http://${hostport(metrics.address)}/metrics`,
      {
        address: metrics.address.hostname,
        port: metrics.address.port,
      },
    );
    if (!isLoopback(metrics.address.hostname)) {
      // There is no authentication on them: what they tell (traffic, peers
      // refused, key reloads) is for whoever can reach the address.
      logger.log(
        "warning",
        "metrics_exposed",
        `Metrics and health are served unauthenticated on ${hostport(metrics.address)}, ` +
          "reachable from other machines (bind --metrics to 127.0.0.1 unless that is meant)",
        { address: metrics.address.hostname, port: metrics.address.port },
      );
    }
  }

  const signal = await stopped;
  logger.log("info", "signal", `Received ${signal}: shutting down`);
  await server.close();
  await metrics?.shutdown();
  clearTimeout(expiryTimer);
  Deno.removeSignalListener("SIGHUP", reload);
  Deno.removeSignalListener("SIGINT", onInt);
  Deno.removeSignalListener("SIGTERM", onTerm);
  return 0;
}

/** How often a running server looks at its certificate's expiry. */
const EXPIRY_CHECK_MS = 3_600_000;

/** How long before its expiry a certificate is warned of. */
const EXPIRY_WARNING_MS = 14 * 86_400_000;

/** A line when the certificate expires within two weeks (warning) or has expired (error). */
export function warnExpiry(logger: Logger, summary: CertificateSummary, now: number): void {
  const fields = { subject: summary.subject, validTo: summary.validTo };
  if (now > summary.notAfter) {
    logger.log(
      "error",
      "certificate_expired",
      `Certificate ${summary.subject} expired ${summary.validTo}: clients that check dates refuse it (renew it and send SIGHUP)`,
      fields,
    );
  } else if (summary.notAfter - now < EXPIRY_WARNING_MS) {
    const days = Math.floor((summary.notAfter - now) / 86_400_000);
    logger.log(
      "warning",
      "certificate_expiring",
      `Certificate ${summary.subject} expires ${summary.validTo} (in ${days} days): renew it and send SIGHUP`,
      { ...fields, days },
    );
  }
}

function logCertificate(logger: Logger, event: string, summary: CertificateSummary): void {
  logger.log(
    "info",
    event,
    `Certificate ${summary.subject} (issuer ${summary.issuer}, valid to ${summary.validTo})`,
    { ...summary },
  );
}

function hostport(a: { hostname: string; port: number }): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

export { usage };
