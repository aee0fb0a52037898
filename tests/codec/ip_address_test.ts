/**
 * IP literals: RFC 5952's examples as facts, and the WHATWG URL parser
 * (which also prints RFC 5952 text) as a second implementation to agree with.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatIp, isLoopbackIp, parseIp } from "../../src/codec/ip_address.ts";

const hex = (text: string) => Uint8Array.from(text.match(/../g)!.map((b) => parseInt(b, 16)));

Deno.test("formatIp follows RFC 5952 §4", () => {
  const cases: [string, string][] = [
    ["20010db8000000000000000000000001", "2001:db8::1"], // §4.1 no leading zeros, §4.2.1 longest run
    ["20010db8000000010001000100010001", "2001:db8:0:1:1:1:1:1"], // §4.2.2 one zero group stays
    ["20010db8000000000001000000000001", "2001:db8::1:0:0:1"], // §4.2.3 the first of equal runs
    ["20010db8000000000000000100000001", "2001:db8::1:0:1"], // §4.2.3 the longest run wins
    ["20010DB8AAAABBBBCCCCDDDDEEEEFFFF".toLowerCase(), "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"], // §4.3
    ["00000000000000000000000000000000", "::"],
    ["00000000000000000000000000000001", "::1"],
    ["00010000000000000000000000000000", "1::"],
    ["00000000000000000000ffff01020304", "::ffff:1.2.3.4"], // §5 IPv4-mapped
  ];
  for (const [bytes, text] of cases) {
    assert.equal(formatIp(hex(bytes)), text);
    assert.deepEqual(parseIp(text), hex(bytes), text);
  }
  assert.equal(formatIp(new Uint8Array([192, 0, 2, 33])), "192.0.2.33");
});

Deno.test("parseIp accepts literals and refuses the rest", () => {
  assert.deepEqual(parseIp("localhost"), new Uint8Array([127, 0, 0, 1]));
  assert.deepEqual(parseIp("0.0.0.0"), new Uint8Array(4));
  assert.deepEqual(parseIp("2001:DB8::1"), hex("20010db8000000000000000000000001"));
  assert.deepEqual(parseIp("::ffff:10.0.0.1"), hex("00000000000000000000ffff0a000001"));
  for (
    const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.1.1.1",
      "01.2.3.4",
      "1.2.3.a",
      "example.com",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4::5:6:7:8",
      "12345::",
      "::1.2.3",
      "[::1]",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("formatIp agrees with the URL parser, and parseIp reads back what it printed", () => {
  // Addresses with runs of zeros are the interesting ones: bias groups towards 0.
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
      const bytes = new Uint8Array(16);
      groups.forEach((g, i) => {
        bytes[2 * i] = g >> 8;
        bytes[2 * i + 1] = g & 0xff;
      });
      const text = formatIp(bytes);
      assert.deepEqual(parseIp(text), bytes);
      // URL prints IPv4-mapped addresses in hex; every other address the same way we do.
      const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
      if (!mapped) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
    }),
    { numRuns: 2_000 },
  );
});

Deno.test("isLoopbackIp: 127.0.0.0/8 and ::1 only", () => {
  for (const text of ["127.0.0.1", "127.255.3.4", "::1", "0:0:0:0:0:0:0:1", "localhost"]) {
    assert.equal(isLoopbackIp(text), true, text);
  }
  const outside = ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::2", "::ffff:127.0.0.1"];
  for (const text of [...outside, "1::1", "127.0.0.256", "example.com", ""]) {
    assert.equal(isLoopbackIp(text), false, text);
  }
});
