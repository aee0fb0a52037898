/**
 * Builds a peer program (a Go, C or C++ client or server of ours against a
 * real DTLS stack) once per test file, for the end-to-end tests in
 * tests/e2e/. What is missing makes the tests skip with a printed reason; a
 * build that fails with everything present fails the tests.
 *
 * @module
 */

/** A built peer, for `Deno.test({ ignore: peer.ignore, ... })` and `peer.path()`. */
export interface BuiltPeer {
  /** True when something the build needs is not installed (the reason is printed). */
  readonly ignore: boolean;
  /** The binary; throws the build error or the skip reason. */
  path(): string;
}

/** True if `sh -c script` succeeds. */
export function shellSucceeds(script: string): boolean {
  return new Deno.Command("sh", { args: ["-c", script], stdout: "null", stderr: "null" })
    .outputSync().success;
}

/**
 * Runs `command` with `args(output)` to build into a temporary file, unless
 * `missing()` names something that is not installed. The binary is removed
 * when the test file's process ends.
 */
export function buildPeer(
  name: string,
  missing: () => string | undefined,
  command: string,
  args: (output: string) => string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): BuiltPeer {
  const reason = missing();
  if (reason !== undefined) {
    console.log(`skip: ${name}: ${reason}`);
    return {
      ignore: true,
      path: () => {
        throw new Error(reason);
      },
    };
  }
  const output = Deno.makeTempFileSync({ prefix: `${name}-` });
  globalThis.addEventListener("unload", () => Deno.removeSync(output));
  const result = new Deno.Command(command, {
    args: args(output),
    ...options,
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const error = result.success ? undefined : new TextDecoder().decode(result.stderr);
  return {
    ignore: false,
    path: () => {
      if (error !== undefined) throw new Error(`Cannot build ${name}:\n${error}`);
      return output;
    },
  };
}
