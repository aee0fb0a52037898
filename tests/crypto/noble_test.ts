import assert from "node:assert/strict";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { providerVectorTests } from "./provider_vectors.ts";

Deno.test("noble: provider name", () => {
  assert.equal(nobleProvider.name, "noble");
});

providerVectorTests(nobleProvider);
