/**
 * `deno task compile`: builds the standalone executable `dist/dtls-server`
 * with its permissions and `--unstable-net` baked in.
 *
 *     deno task compile [OUTPUT] [--with-ffi]
 *
 * `--with-ffi` also builds in the FFI permission (`--allow-ffi`), which the libc socket
 * backend (`--io libc`) needs; it is full access, so it is not the default.
 *
 * `deno compile` needs Deno's base runtime (`denort`): it downloads it, or
 * takes the file named by `DENORT_BIN`. Where it can do neither, this says so
 * in one line instead of leaving a DNS error to decode.
 *
 * @module
 */

const ffi = Deno.args.includes("--with-ffi");
const output = Deno.args.find((a) => !a.startsWith("--")) ?? "dist/dtls-server";
const args = [
  "compile",
  "--unstable-net",
  "--allow-net",
  "--allow-read",
  "--allow-env",
  ...(ffi ? ["--allow-ffi"] : []),
  "--output",
  output,
  "main.ts",
];
const child = new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" })
  .spawn();
const stderr = new TextDecoder().decode((await child.output()).stderr);
const status = await child.status;
if (status.success) {
  console.log(`Built ${output}`);
  Deno.exit(0);
}
Deno.stderr.writeSync(new TextEncoder().encode(stderr));
const denort = Deno.env.get("DENORT_BIN");
if (/Could not find denort/.test(stderr)) {
  console.error(
    `Cannot compile: DENORT_BIN=${denort} is not a denort binary; point it at one of Deno ${Deno.version.deno}`,
  );
} else if (
  /denort|dl\.deno\.land|dns error|error sending request/.test(stderr) && denort === undefined
) {
  console.error(
    `Cannot compile: deno compile could not download its base runtime (denort ${Deno.version.deno}); ` +
      "set DENORT_BIN to a local denort binary, or run where dl.deno.land is reachable",
  );
}
Deno.exit(status.code || 1);
