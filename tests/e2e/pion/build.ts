/**
 * Builds the pion/dtls peer in this folder (main.go) against Debian's
 * golang-github-pion-dtls.v2-dev, for the interop tests and the benchmark
 * comparison.
 *
 * @module
 */

import { buildPeer, type BuiltPeer, shellSucceeds } from "../../helpers/build_peer.ts";

const GOPATH = "/usr/share/gocode";

/** The pion peer, built once per process (or why it cannot be). */
export function buildPionPeer(): BuiltPeer {
  return buildPeer(
    "pion-peer",
    () => {
      if (!shellSucceeds("command -v go")) return "go not installed (Debian: golang-go)";
      if (!shellSucceeds(`test -d ${GOPATH}/src/github.com/pion/dtls/v2`)) {
        return "pion not installed (Debian: golang-github-pion-dtls.v2-dev)";
      }
      return undefined;
    },
    "go",
    (output) => ["build", "-o", output, "."],
    {
      cwd: new URL(".", import.meta.url).pathname,
      env: { GO111MODULE: "off", GOPATH, GOFLAGS: "" },
    },
  );
}
