import assert from "node:assert/strict";
import { constantTimeEqual } from "../../src/crypto/constant_time.ts";
import { hex } from "./hex.ts";

Deno.test("constantTimeEqual: equal, different and differently sized arrays", () => {
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
  assert.equal(constantTimeEqual(hex("00ff10"), hex("00ff10")), true);
  for (let i = 0; i < 3; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const b = hex("00ff10");
      b[i]! ^= 1 << bit;
      assert.equal(constantTimeEqual(hex("00ff10"), b), false);
    }
  }
  assert.equal(constantTimeEqual(hex("00ff10"), hex("00ff")), false);
  assert.equal(constantTimeEqual(hex("00"), new Uint8Array(0)), false);
});

Deno.test("constantTimeEqual: compares views by content, not identity", () => {
  const backing = hex("aabbccaabbcc");
  assert.equal(constantTimeEqual(backing.subarray(0, 3), backing.subarray(3)), true);
});
