import assert from "node:assert/strict";
import {
  demoPskStore,
  mapPskStore,
  parseHexKey,
  parsePskFile,
} from "../../src/server/psk_store.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

Deno.test("psktool format: identities, keys, comments and blank lines", () => {
  const keys = parsePskFile("# keys\nalice:0102ff\n\n  bob:AABB  \nurn:dev:1:cafe\n");
  assert.deepEqual([...keys.keys()], ["alice", "bob", "urn:dev:1"]);
  assert.deepEqual(keys.get("alice"), new Uint8Array([1, 2, 255]));
  assert.deepEqual(keys.get("bob"), new Uint8Array([0xaa, 0xbb]));
  assert.deepEqual(keys.get("urn:dev:1"), new Uint8Array([0xca, 0xfe]));
});

Deno.test("a malformed key line is refused, naming the line but not the key", () => {
  assert.throws(() => parsePskFile("alice:0102\nbob:zz99\n"), (e: Error) => {
    assert.match(e.message, /line 2/);
    assert.doesNotMatch(e.message, /zz99/);
    return true;
  });
  assert.throws(() => parsePskFile("no-colon\n"), /line 1: expected identity:hexkey/);
  assert.throws(() => parsePskFile("a:abc\n"), /even number of hex digits/);
  assert.throws(() => parsePskFile("a:01\na:02\n"), /duplicate identity/);
  assert.throws(() => parsePskFile("# nothing\n"), /no keys/);
});

Deno.test("the demo store gives every identity the Qt example key", () => {
  const store = demoPskStore();
  assert.equal(store.kind, "demo");
  const demoKey = parseHexKey("1a2b3c4d5e6f", "k");
  assert.deepEqual(store.lookup(utf8("Alice (clone number 1)")), demoKey);
  assert.deepEqual(store.lookup(new Uint8Array([0xff])), demoKey);
});

Deno.test("a key store knows only its identities", () => {
  const store = mapPskStore(new Map([["alice", new Uint8Array([1])]]));
  assert.deepEqual(store.lookup(utf8("alice")), new Uint8Array([1]));
  assert.equal(store.lookup(utf8("mallory")), undefined);
  assert.equal(store.lookup(utf8("alic")), undefined);
  assert.equal(store.lookup(new Uint8Array()), undefined);
});

Deno.test("identities match byte for byte: a BOM or invalid UTF-8 never reaches another identity", () => {
  const k = (n: number) => new Uint8Array([n]);
  const store = mapPskStore(new Map([["abc", k(1)], ["a\ufffd", k(2)], ["é", k(3)]]));
  assert.deepEqual(store.lookup(utf8("abc")), k(1));
  assert.equal(store.lookup(utf8("\uFEFFabc")), undefined, "a leading BOM is part of the identity");
  assert.equal(
    store.lookup(new Uint8Array([0x61, 0xff])),
    undefined,
    "invalid UTF-8 is not U+FFFD",
  );
  assert.equal(
    store.lookup(new Uint8Array([0x61, 0xc3])),
    undefined,
    "a cut character is not U+FFFD",
  );
  assert.deepEqual(store.lookup(utf8("a\ufffd")), k(2), "the real U+FFFD is");
  assert.deepEqual(store.lookup(new Uint8Array([0xc3, 0xa9])), k(3), "é as UTF-8");
  assert.equal(store.lookup(new Uint8Array([0xe9])), undefined, "é as Latin-1 is another identity");

  const both = mapPskStore(new Map([["abc", k(1)], ["\uFEFFabc", k(4)]]));
  assert.deepEqual(both.lookup(utf8("abc")), k(1));
  assert.deepEqual(both.lookup(utf8("\uFEFFabc")), k(4));
  assert.equal(both.size, 2);
});

Deno.test("key file identities are matched as their UTF-8 bytes", () => {
  const store = mapPskStore(parsePskFile("héllo:01\nurn:dev:1:02\n"));
  assert.deepEqual(store.lookup(utf8("héllo")), new Uint8Array([1]));
  assert.deepEqual(store.lookup(utf8("urn:dev:1")), new Uint8Array([2]));
  assert.equal(store.lookup(new Uint8Array([0x68, 0xe9, 0x6c, 0x6c, 0x6f])), undefined);
});

Deno.test("an identity with a lone surrogate is refused: it has no UTF-8 form", () => {
  assert.throws(
    () => mapPskStore(new Map([["a\ud800", new Uint8Array([1])]])),
    /^TypeError: Cannot use PSK identity "a\\u\{d800\}": not well-formed Unicode/,
  );
});
