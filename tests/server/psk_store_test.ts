import assert from "node:assert/strict";
import {
  demoPskStore,
  mapPskStore,
  parseHexKey,
  parsePskFile,
} from "../../src/server/psk_store.ts";

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
  assert.deepEqual(store.lookup("Alice (clone number 1)"), parseHexKey("1a2b3c4d5e6f", "k"));
});

Deno.test("a key store knows only its identities", () => {
  const store = mapPskStore(new Map([["alice", new Uint8Array([1])]]));
  assert.deepEqual(store.lookup("alice"), new Uint8Array([1]));
  assert.equal(store.lookup("mallory"), undefined);
});
