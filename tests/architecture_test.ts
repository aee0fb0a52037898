/**
 * Keeps the engine sans-I/O and its layers importing only downward
 * (ARCHITECTURE.md): codec, memory → crypto → record → cookie / handshake → connection;
 * and that code outside a module folder (src/net/libc/) imports only its mod.ts.
 */
import assert from "node:assert/strict";

const ENGINE = ["codec", "memory", "crypto", "record", "cookie", "handshake", "connection"];
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
  cookie: ["codec", "crypto"],
  handshake: ["codec", "memory", "crypto", "record"],
  connection: ["codec", "memory", "crypto", "record", "cookie", "handshake"],
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
