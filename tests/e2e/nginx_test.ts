/**
 * Three instances behind nginx's UDP `stream` proxy, with the README's
 * configuration (its ports replaced by free ones), sharing one ticket key
 * file: OpenSSL's s_client saves its session through nginx; the instance
 * it used is stopped and, as the README says to, marked `down` with a
 * reload; the client's next connection resumes its session on another
 * instance with an abbreviated handshake. Also what the README says of a
 * dead instance nginx was not told of: a datagram nginx sends there is
 * answered with an empty datagram.
 */
import assert from "node:assert/strict";
import { sClientPsk } from "../helpers/openssl_psk.ts";
import {
  DEMO,
  REPO_ROOT,
  type RunPeerResult,
  type ServerProcess,
  skipUnless,
  startServer,
} from "../helpers/server_process.ts";

const NGINX_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so";
const TIMEOUT_MS = 20_000;

function missing(): string | undefined {
  const tools = skipUnless("nginx", "openssl");
  if (tools.ignore) return "nginx or openssl not installed";
  try {
    Deno.statSync(NGINX_MODULE);
  } catch {
    return `no ${NGINX_MODULE} (Debian: libnginx-mod-stream)`;
  }
  return undefined;
}
const reason = missing();
if (reason !== undefined) console.log(`skip: nginx tests: ${reason}`);

/** The README's nginx configuration, verbatim. */
function readmeConfig(): string {
  const readme = Deno.readTextFileSync(`${REPO_ROOT}/README.md`);
  const match = /```nginx\n([\s\S]*?)```/.exec(readme);
  assert.ok(match, "README has an nginx block");
  return match[1]!;
}

/** A free UDP port on loopback. */
function freePort(): number {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

/** nginx running the README's configuration in its own directory. */
class Nginx implements AsyncDisposable {
  readonly dir = Deno.makeTempDirSync({ prefix: "dtls-nginx-" });
  readonly port = freePort();
  #child: Deno.ChildProcess | undefined;
  #config = "";

  constructor(readonly backends: readonly number[]) {}

  /** Writes the configuration, with `down` on the backends in `down`. */
  write(down: readonly number[] = []): void {
    let config = readmeConfig().replace(
      "listen 127.0.0.1:4433 udp;",
      `listen 127.0.0.1:${this.port} udp;`,
    );
    assert.ok(config.includes(`listen 127.0.0.1:${this.port} udp;`), "the README's listen line");
    [4434, 4435, 4436].forEach((readmePort, i) => {
      const line = `server 127.0.0.1:${readmePort} max_fails=1 fail_timeout=30s;`;
      assert.ok(config.includes(line), `the README's upstream line for ${readmePort}`);
      const port = this.backends[i]!;
      config = config.replace(
        line,
        `server 127.0.0.1:${port} max_fails=1 fail_timeout=30s${
          down.includes(port) ? " down" : ""
        };`,
      );
    });
    this.#config = config;
    Deno.writeTextFileSync(`${this.dir}/nginx.conf`, config);
  }

  #args(extra: string[] = []): string[] {
    return [
      "-p",
      this.dir,
      "-c",
      `${this.dir}/nginx.conf`,
      "-e",
      `${this.dir}/error.log`,
      "-g",
      `pid ${this.dir}/nginx.pid; daemon off;`,
      ...extra,
    ];
  }

  async start(): Promise<void> {
    this.write();
    this.#child = new Deno.Command("nginx", { args: this.#args(), stdout: "null", stderr: "piped" })
      .spawn();
    // Up when its pid file is written.
    for (let i = 0; i < 100; i++) {
      try {
        Deno.statSync(`${this.dir}/nginx.pid`);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`nginx did not start:\n${this.#config}`);
  }

  /** `nginx -s reload` with `down` on `down`. */
  async reload(down: readonly number[]): Promise<void> {
    this.write(down);
    const out = await new Deno.Command("nginx", {
      args: this.#args(["-s", "reload"]),
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    // The new workers take over once the old ones have been told to go.
    await new Promise((r) => setTimeout(r, 500));
  }

  get errorLog(): string {
    try {
      return Deno.readTextFileSync(`${this.dir}/error.log`);
    } catch {
      return "";
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child?.kill("SIGTERM");
      await this.#child?.status;
    } finally {
      Deno.removeSync(this.dir, { recursive: true });
    }
  }
}

/** s_client through `port`, saving its session to `session` or resuming it from there. */
function sClient(port: number, session: string, flag: "-sess_out" | "-sess_in") {
  return sClientPsk(port, ["-cipher", "PSK-AES128-GCM-SHA256", flag, session], TIMEOUT_MS);
}

function show(servers: readonly ServerProcess[], nginx: Nginx, result: RunPeerResult): string {
  return `exit ${result.code}, timed out ${result.timedOut}\n--- s_client stdout:\n${result.stdout}\n` +
    `--- nginx error.log:\n${nginx.errorLog}\n` + servers.map((s) => s.describe()).join("\n");
}

/** One UDP datagram from a fresh port through nginx; the size of what comes back within 150 ms. */
async function probe(port: number): Promise<number | undefined> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await socket.send(new TextEncoder().encode("probe"), {
      transport: "udp",
      hostname: "127.0.0.1",
      port,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = await Promise.race([
      socket.receive().then(([d]) => d.length),
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), 150);
      }),
    ]);
    clearTimeout(timer);
    return answer;
  } finally {
    socket.close();
  }
}

Deno.test({
  name: "nginx: a client whose instance was stopped resumes its session on another",
  ignore: reason !== undefined,
  sanitizeResources: false,
  async fn() {
    const keys = Deno.makeTempFileSync({ prefix: "ticket-keys-" });
    const session = Deno.makeTempFileSync({ prefix: "s_client-session-" });
    Deno.chmodSync(keys, 0o600);
    Deno.writeTextFileSync(keys, `${"5a".repeat(32)}\n`);
    const servers: ServerProcess[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        servers.push(await startServer(["--ticket-key-file", keys]));
      }
      await using nginx = new Nginx(servers.map((s) => s.port));
      await nginx.start();

      const first = await sClient(nginx.port, session, "-sess_out");
      assert.ok(first.reply, show(servers, nginx, first));
      const used = servers.find((s) => s.events("handshake_complete").length > 0);
      assert.ok(used, show(servers, nginx, first));
      assert.equal(used.events("handshake_complete")[0]!.resumed, undefined);

      // Stopped without nginx being told: a third of new client ports still
      // reach it, and each such datagram is answered with an empty one.
      assert.equal(await used.stop(), 0);
      let sawEmpty = false;
      for (let i = 0; i < 30 && !sawEmpty; i++) sawEmpty = await probe(nginx.port) === 0;
      assert.ok(sawEmpty, "a datagram to the dead instance is answered with an empty one");
      assert.match(nginx.errorLog, /recv\(\) failed \(111: Connection refused\)/);

      // Marked down and reloaded: the client's next connection resumes elsewhere.
      await nginx.reload([used.port]);
      // 16 fresh ports: were it still in the hash, one would reach it 99.8 % of the time.
      for (let i = 0; i < 16; i++) {
        assert.notEqual(await probe(nginx.port), 0, "nothing reaches the dead instance now");
      }
      const second = await sClient(nginx.port, session, "-sess_in");
      const context = show(servers, nginx, second);
      assert.match(second.stdout, /^Reused, /m, context);
      const resumed = servers.filter((s) => s !== used).flatMap((s) =>
        s.events("handshake_complete")
      );
      assert.equal(resumed.length, 1, context);
      assert.equal(resumed[0]!.resumed, "ticket", context);
      assert.equal(resumed[0]!.identity, DEMO.identity, context);
    } finally {
      for (const server of servers) await server[Symbol.asyncDispose]();
      Deno.removeSync(keys);
      Deno.removeSync(session);
    }
  },
});
