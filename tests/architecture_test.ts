/**
 * Keeps the engine sans-I/O and its layers importing only downward
 * (ARCHITECTURE.md): codec, memory → crypto → record, session → cookie / handshake → connection;
 * and that code outside a module folder (src/net/libc/) imports only its mod.ts.
 */
import assert from "node:assert/strict";

const ENGINE = [
  "codec",
  "memory",
  "crypto",
  "record",
  "session",
  "cookie",
  "handshake",
  "connection",
];
const FORBIDDEN = [
  /\bDeno\./,
  /\bDate\b/,
  /\bperformance\./,
  /\bconsole\./,
  /crypto\.getRandomValues/,
  /\bsetTimeout\b/,
  /\bsetInterval\b/,
  /\bMath\.random\b/,
];
/** Which folders each layer may import from (besides itself). */
const ALLOWED: Record<string, string[]> = {
  codec: [],
  memory: [],
  crypto: ["codec"],
  record: ["codec", "memory", "crypto"],
  session: ["codec", "crypto"],
  cookie: ["codec", "crypto"],
  handshake: ["codec", "memory", "crypto", "record", "session"],
  connection: ["codec", "memory", "crypto", "record", "session", "cookie", "handshake"],
};

function* sources(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    else if (path.endsWith(".ts")) yield path;
  }
}

function code(text: string): string {
  // Comments may name what the code must not do.
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:])\/\/.*$/gm, "$1");
}

for (const layer of ENGINE) {
  Deno.test(`engine layer ${layer} does no I/O and reads no clock`, () => {
    for (const path of sources(new URL(`../src/${layer}`, import.meta.url).pathname)) {
      const text = code(Deno.readTextFileSync(path));
      for (const pattern of FORBIDDEN) {
        assert.doesNotMatch(text, pattern, `${path} uses ${pattern}`);
      }
    }
  });

  Deno.test(`engine layer ${layer} imports only from the layers below it`, () => {
    for (const path of sources(new URL(`../src/${layer}`, import.meta.url).pathname)) {
      const text = Deno.readTextFileSync(path);
      for (const match of text.matchAll(/from "\.\.\/([a-z_]+)\//g)) {
        const target = match[1]!;
        assert.ok(
          ALLOWED[layer]!.includes(target),
          `${path} imports from ${target}`,
        );
      }
    }
  });
}

/** A module folder: code outside it imports only its entry point. */
const MODULES = [{ folder: "src/net/libc/", entry: "src/net/libc/mod.ts" }];

Deno.test("a module folder is entered only through its mod.ts", () => {
  const root = new URL("../", import.meta.url);
  const files = ["src", "tests", "tools", "bench"].flatMap((dir) => [
    ...sources(new URL(dir, root).pathname),
  ]);
  files.push(new URL("main.ts", root).pathname);
  for (const path of files) {
    const text = code(Deno.readTextFileSync(path));
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = new URL(match[1]!, `file://${path}`).pathname.slice(root.pathname.length);
      const from = path.slice(root.pathname.length);
      for (const { folder, entry } of MODULES) {
        if (from.startsWith(folder) || !target.startsWith(folder)) continue;
        assert.equal(target, entry, `${from} imports ${target}, not ${entry}`);
      }
    }
  }
});

// ---- the datagram walk ----------------------------------------------------------

/** The files an application datagram runs through, in and back out (ARCHITECTURE.md). */
const WALK = [
  "src/net/datagram_socket.ts",
  "src/server/dtls_server.ts",
  "src/connection/endpoint.ts",
  "src/connection/connection.ts",
  "src/record/header.ts",
  "src/record/half_conn.ts",
  "src/record/protection.ts",
  "src/crypto/node.ts",
];
/**
 * Helpers the path calls and returns from at once, which a reader can take
 * on trust: a counter's `add`, the logger's level check, the 48-bit
 * sequence number codec, the byte pool records are written into, the seal
 * range check, and the peeks at the next deadline when the shell sets its
 * timer.
 */
const LEAVES = [
  "src/server/metrics.ts",
  "src/server/log.ts",
  "src/codec/reader.ts",
  "src/codec/writer.ts",
  "src/codec/byte_pool.ts",
  "src/crypto/provider.ts",
  "src/connection/deadlines.ts",
  "src/handshake/flight.ts",
  "src/server/throttled_log.ts",
];

Deno.test({
  name: "an application datagram runs through the eight files ARCHITECTURE.md names, and no other",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { Session } = await import("node:inspector");
    const { DtlsServer } = await import("../src/server/dtls_server.ts");
    const { connectionConfig, createClientConnection } = await import(
      "../src/connection/endpoint.ts"
    );
    const { nodeProvider } = await import("../src/crypto/node.ts");
    const { suiteByName } = await import("../src/record/suites.ts");
    const text = new TextEncoder();
    const quiet = { log() {}, enabled: () => false };
    const server = new DtlsServer({ port: 0, logger: quiet, handshakeRate: 0 });
    const { port } = server.listen();
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
    const client = createClientConnection(
      connectionConfig(nodeProvider, (n) => crypto.getRandomValues(new Uint8Array(n))),
      {
        identity: text.encode("Qt DTLS example client"),
        psk: new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]),
        suites: [suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256")!],
        groups: ["x25519"],
      },
      Date.now(),
    );
    /** Sends what the client has, and feeds it the server's answers until `done`. */
    const exchange = async (done: () => boolean) => {
      for (let round = 0; round < 20 && !done(); round++) {
        for (let d = client.pollTransmit(); d; d = client.pollTransmit()) await socket.send(d, to);
        const [answer] = await socket.receive();
        client.handleDatagram(answer, Date.now());
      }
    };
    const session = new Session();
    session.connect();
    const post = (method: string, params: object = {}) =>
      new Promise<unknown>((resolve, reject) =>
        session.post(method, params, (error, result) => error ? reject(error) : resolve(result))
      );
    try {
      await exchange(() => client.isEstablished);
      assert.equal(client.isEstablished, true);
      // One datagram that warms the path, then the one that is watched.
      let reply: Uint8Array | undefined;
      const echo = async () => {
        reply = undefined;
        client.send(text.encode("Message #1"));
        await exchange(() => {
          for (let e = client.pollEvent(); e; e = client.pollEvent()) {
            if (e.type === "data") reply = e.data;
          }
          return reply !== undefined;
        });
      };
      await echo();
      await post("Profiler.enable");
      await post("Profiler.startPreciseCoverage", { callCount: true, detailed: false });
      await post("Profiler.takePreciseCoverage"); // resets the counts
      await echo();
      const taken = await post("Profiler.takePreciseCoverage") as {
        result: { url: string; functions: { ranges: { count: number }[] }[] }[];
      };
      await post("Profiler.stopPreciseCoverage");
      assert.match(new TextDecoder().decode(reply), /ACK/);
      const root = new URL("..", import.meta.url).href;
      const ran = new Set<string>();
      for (const script of taken.result) {
        if (!script.url.startsWith(`${root}src/`)) continue;
        if (script.functions.some((f) => f.ranges[0]!.count > 0)) {
          ran.add(script.url.slice(root.length));
        }
      }
      // The client's engine runs in this process too: its files are the server's.
      assert.deepEqual(
        [...ran].filter((file) => !WALK.includes(file) && !LEAVES.includes(file)).sort(),
        [],
        "the path reached files ARCHITECTURE.md does not name",
      );
      assert.deepEqual(WALK.filter((file) => !ran.has(file)), [], "named files the path skipped");
    } finally {
      session.disconnect();
      socket.close();
      await server.close();
    }
  },
});
