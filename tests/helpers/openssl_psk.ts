/**
 * OpenSSL's s_client over DTLS 1.2 with the demo PSK: one message, stdin
 * held open until the server's ACK (or the client's exit).
 */
import { DEMO, runPeer, type RunPeerResult } from "./server_process.ts";

/** What the Qt example server answers: `to (127.0.0.1:PORT): ACK`. */
export const ACK = /to \(127\.0\.0\.1:(\d+)\): ACK/;

/** s_client to 127.0.0.1:`port` with the demo identity and key, then `extra` (-cipher, -reconnect, ...). */
export function sClientPsk(
  port: number,
  extra: readonly string[],
  timeoutMs = 20_000,
): Promise<RunPeerResult> {
  return runPeer("openssl", [
    "s_client",
    "-dtls1_2",
    "-connect",
    `127.0.0.1:${port}`,
    "-psk",
    DEMO.keyHex,
    "-psk_identity",
    DEMO.identity,
    ...extra,
  ], { input: "Message #1\n", until: ACK, timeoutMs });
}
