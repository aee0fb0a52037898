/**
 * The public API: the server and client shells, and the sans-I/O engine for
 * embedding in another I/O loop.
 *
 * @module
 */

export {
  type DatagramHandler,
  DtlsServer,
  type DtlsServerOptions,
  type PeerInfo,
  qtAckHandler,
} from "./server/dtls_server.ts";
export { DtlsClient, type DtlsClientOptions } from "./client/dtls_client.ts";
export {
  configureLogging,
  type Logger,
  type LogLevel,
  LogtapeLogger,
  MemoryLogger,
} from "./server/log.ts";
export {
  asyncPskStore,
  demoPskStore,
  mapPskStore,
  parsePskFile,
  type PskStore,
} from "./server/psk_store.ts";
export { Connection, type ConnectionConfig } from "./connection/connection.ts";
export {
  connectionConfig,
  createClientConnection,
  type EndpointOutcome,
  type PeerEntry,
  ServerEndpoint,
  type ServerEndpointOptions,
} from "./connection/endpoint.ts";
export type { ConnectionEvent, DropReason } from "./connection/events.ts";
export { CIPHER_SUITES, type CipherSuite, suiteByName } from "./record/suites.ts";
export type { CryptoProvider, RandomSource } from "./crypto/provider.ts";
export { nobleProvider } from "./crypto/noble.ts";
