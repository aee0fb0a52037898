/**
 * tshark as an independent judge of our bytes: a live capture on loopback,
 * decoding the server's port as DTLS with the keys it is given (the demo
 * PSK by default, or a key log file), one line of fields per datagram.
 */
import { DEMO, skipUnless, spawnPeer } from "./server_process.ts";

const TIMEOUT_MS = 10_000;

/** Whether this user may capture on loopback (root, or dumpcap's capabilities). */
function canCaptureLoopback(): boolean {
  try {
    return new Deno.Command("dumpcap", { args: ["-L", "-i", "lo"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

export function captureSkip(): { ignore: boolean } {
  const base = skipUnless("openssl", "tshark", "dumpcap");
  if (base.ignore) return base;
  if (!canCaptureLoopback()) {
    console.log(
      "skip: no permission to capture on lo (tshark tests need root or the wireshark group)",
    );
    return { ignore: true };
  }
  return { ignore: false };
}

/** One DTLS datagram as tshark decoded it (fields joined with `|`). */
export interface Decoded {
  readonly srcPort: number;
  readonly contentTypes: string;
  readonly epochs: string;
  readonly alert: string;
  readonly data: string;
  readonly malformed: string;
  readonly severity: string;
}

const TSHARK_FIELDS = [
  "udp.srcport",
  "dtls.record.content_type",
  "dtls.record.epoch",
  "dtls.alert_message.desc",
  "data.data",
  "_ws.malformed",
  "_ws.expert.severity",
];

export function parseDecoded(stdout: string): Decoded[] {
  return stdout.split("\n").filter((l) => l.includes("|")).map((line) => {
    const [srcPort, contentTypes, epochs, alert, data, malformed, severity] = line.split("|");
    return {
      srcPort: Number(srcPort),
      contentTypes: contentTypes ?? "",
      epochs: epochs ?? "",
      alert: alert ?? "",
      data: data ?? "",
      malformed: malformed ?? "",
      severity: severity ?? "",
    };
  });
}

export function hex(text: string): string {
  return [...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Live-decodes the server's traffic with the demo PSK, or with the
 * preferences in `decrypt` (e.g. `["-o", "tls.keylog_file:FILE"]`).
 * Decoding live (rather than reading a file afterwards) lets the test wait
 * for the last record it expects instead of guessing when the capture file
 * is flushed.
 */
export async function startTshark(
  port: number,
  decrypt: readonly string[] = ["-o", `dtls.psk:${DEMO.keyHex}`],
) {
  const tshark = spawnPeer("tshark", [
    "-i",
    "lo",
    "-f",
    `udp port ${port}`,
    "-l",
    "-n",
    "-d",
    `udp.port==${port},dtls`,
    ...decrypt,
    "-T",
    "fields",
    "-E",
    "separator=|",
    ...TSHARK_FIELDS.flatMap((f) => ["-e", f]),
  ]);
  try {
    await tshark.waitForOutput(/Capturing on/, TIMEOUT_MS);
    await untilCaptured(tshark, port);
  } catch (error) {
    await tshark[Symbol.asyncDispose]();
    throw error;
  }
  return tshark;
}

/**
 * "Capturing on" is printed before the capture filter is live: a handshake
 * started at once may be missed, and without its ClientHello tshark cannot
 * decrypt. Probe with a one-byte datagram (the server drops it silently)
 * until tshark has shown one.
 */
async function untilCaptured(tshark: ReturnType<typeof spawnPeer>, port: number): Promise<void> {
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const probePort = (probe.addr as Deno.NetAddr).port;
  const seen = new RegExp(`^${probePort}\\|`, "m");
  try {
    const deadline = Date.now() + TIMEOUT_MS;
    while (!seen.test(tshark.stdout)) {
      if (Date.now() > deadline) {
        throw new Error(`tshark never showed a probe\n${tshark.describe()}`);
      }
      await probe.send(new Uint8Array([0]), { transport: "udp", hostname: "127.0.0.1", port });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    probe.close();
  }
}

export const CLOSE_NOTIFY_FROM = (port: number) => new RegExp(`^${port}\\|21\\|1\\|0\\|`, "m");
