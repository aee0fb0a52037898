/**
 * The load tool, tiny: 2 clients for about a second against our server on
 * loopback. Only the shape of the report and the absence of errors are
 * checked, never a rate (timing-free).
 */
import assert from "node:assert/strict";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import type { Logger } from "../../src/server/log.ts";
import { LOAD_DEFAULTS, type LoadReport, runLoad } from "../../tools/load.ts";
import { libcUnavailable } from "../helpers/libc.ts";
import { bindDatagramSocket, type SocketIo } from "../../src/net/datagram_socket.ts";

const quiet: Logger = { log: () => {} };

function startServer(io: SocketIo = "deno"): { server: DtlsServer; port: number } {
  const server = new DtlsServer({
    port: 0,
    io,
    logger: quiet,
    handshakeRate: 0,
    onDatagram: (data) => data,
  });
  return { server, port: server.listen().port };
}

Deno.test("load tool: the command prints one JSON report of an echo run with no errors", async () => {
  const { server, port } = startServer();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        "--allow-net",
        new URL("../../tools/load.ts", import.meta.url).pathname,
        "--port",
        String(port),
        "--mode",
        "echo",
        "--clients",
        "2",
        "--size",
        "64",
        "--duration",
        "1",
        "--warmup",
        "0.3",
        // Every round trip takes more than 0 ms: all samples are "slow", whatever the timing.
        "--slow-ms",
        "0",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const report = JSON.parse(new TextDecoder().decode(out.stdout)) as LoadReport;
    assert.equal(report.mode, "echo");
    assert.equal(report.clients, 2);
    assert.equal(report.payloadBytes, 64);
    assert.equal(report.provider, "load");
    assert.equal(report.errorsTotal, 0, JSON.stringify(report));
    assert.ok(report.messages > 0);
    assert.equal(report.latencyMs.samples, report.messages);
    assert.ok(report.latencyMs.p50 <= report.latencyMs.p99);
    assert.ok(report.latencyMs.p99 <= report.latencyMs.max);
    const slow = report.slow!;
    assert.equal(slow.samples, report.messages);
    assert.equal(slow.percent, 100);
    assert.ok(slow.bursts >= 1 && slow.bursts <= slow.samples);
    assert.ok(slow.largestBurst >= Math.ceil(slow.samples / slow.bursts));
  } finally {
    await server.close();
  }
});

Deno.test("load tool: handshake mode completes full handshakes with cookie and close_notify", async () => {
  const { server, port } = startServer();
  try {
    const report = await runLoad({
      ...LOAD_DEFAULTS,
      port,
      mode: "handshake",
      clients: 2,
      durationMs: 800,
      warmupMs: 200,
    });
    assert.equal(report.errorsTotal, 0, JSON.stringify(report));
    assert.ok(report.handshakes > 0);
    assert.equal(report.messages, 0);
    assert.equal(report.slow, undefined, "no burst analysis unless asked");
  } finally {
    await server.close();
  }
});

const libcReason = libcUnavailable();
if (libcReason !== undefined) console.log(`skipping the libc load tool test: ${libcReason}`);

Deno.test(
  "load tool on libc sockets: echo, handshake and udp runs against servers on libc sockets",
  {
    ignore: libcReason !== undefined,
  },
  async () => {
    const { server, port } = startServer("libc");
    try {
      for (const mode of ["echo", "handshake"] as const) {
        const report = await runLoad({
          ...LOAD_DEFAULTS,
          port,
          mode,
          io: "libc",
          clients: 3,
          durationMs: 600,
          warmupMs: 200,
        });
        assert.equal(report.errorsTotal, 0, JSON.stringify(report));
        assert.ok(
          mode === "echo" ? report.messages > 0 : report.handshakes > 0,
          JSON.stringify(report),
        );
      }
    } finally {
      await server.close();
    }
    const echo = bindDatagramSocket({ hostname: "127.0.0.1", port: 0, io: "libc" });
    const served = echo.serve((d, from) => echo.send(d, from, () => {}), () => {});
    try {
      const report = await runLoad({
        ...LOAD_DEFAULTS,
        port: echo.addr.port,
        mode: "udp",
        io: "libc",
        clients: 3,
        durationMs: 400,
        warmupMs: 100,
      });
      assert.equal(report.errorsTotal, 0, JSON.stringify(report));
      assert.ok(report.messages > 0);
      assert.equal(report.latencyMs.samples, report.messages);
    } finally {
      echo.close();
      await served;
    }
  },
);
