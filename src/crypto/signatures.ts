/**
 * Handshake signatures (RFC 5246 §7.4.1.4.1, §4.7; RFC 8422 §5.4; RFC 8446
 * §4.2.3 for the scheme names): ECDSA on P-256 and P-384, RSASSA-PSS and
 * RSASSA-PKCS1-v1_5 with SHA-256 and SHA-384, all in the runtime's native
 * `node:crypto`. Both providers sign and verify here: `@noble/curves` has
 * no RSA, and one implementation of the key import is one less to trust.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  constants,
  createPrivateKey,
  createPublicKey,
  createSign,
  createVerify,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import type { SignatureScheme, SigningKey, TranscriptSignature } from "./provider.ts";

/** The smallest RSA modulus we sign or verify with, bits. */
export const MIN_RSA_BITS = 2048;

/** Each scheme's hash and how it signs. */
const SCHEMES: Record<
  SignatureScheme,
  { readonly hash: "sha256" | "sha384"; readonly kind: "ecdsa" | "rsa_pss" | "rsa_pkcs1" }
> = {
  ecdsa_secp256r1_sha256: { hash: "sha256", kind: "ecdsa" },
  ecdsa_secp384r1_sha384: { hash: "sha384", kind: "ecdsa" },
  rsa_pss_rsae_sha256: { hash: "sha256", kind: "rsa_pss" },
  rsa_pss_rsae_sha384: { hash: "sha384", kind: "rsa_pss" },
  rsa_pkcs1_sha256: { hash: "sha256", kind: "rsa_pkcs1" },
  rsa_pkcs1_sha384: { hash: "sha384", kind: "rsa_pkcs1" },
};

/** What a key of each type signs with, preferred first (PSS before PKCS#1 v1.5, RFC 8446 §4.2.3). */
const RSA_SCHEMES: readonly SignatureScheme[] = [
  "rsa_pss_rsae_sha256",
  "rsa_pss_rsae_sha384",
  "rsa_pkcs1_sha256",
  "rsa_pkcs1_sha384",
];

/** The options node:crypto signs or verifies `scheme` with, for `key`. */
function options(key: KeyObject, scheme: SignatureScheme) {
  switch (SCHEMES[scheme].kind) {
    case "ecdsa":
      // TLS carries ECDSA signatures as DER (RFC 8422 §5.4).
      return { key, dsaEncoding: "der" as const };
    case "rsa_pss":
      // RFC 8446 §4.2.3: the salt is as long as the digest.
      return {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      };
    case "rsa_pkcs1":
      return { key, padding: constants.RSA_PKCS1_PADDING };
  }
}

/** The curve of an EC key, or undefined for any other key or curve. */
function ecCurve(key: KeyObject): "P-256" | "P-384" | undefined {
  if (key.asymmetricKeyType !== "ec") return undefined;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === "prime256v1" || curve === "P-256") return "P-256";
  if (curve === "secp384r1" || curve === "P-384") return "P-384";
  return undefined;
}

/** Whether `key` can make or check signatures of `scheme` at all. */
function fits(key: KeyObject, scheme: SignatureScheme): boolean {
  if (SCHEMES[scheme].kind === "ecdsa") return ecCurve(key) !== undefined;
  return key.asymmetricKeyType === "rsa" &&
    (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS;
}

/**
 * A signing key from its PKCS#8 DER encoding: EC on P-256 or P-384, or RSA
 * of at least {@link MIN_RSA_BITS} bits. Throws a TypeError naming what is
 * wrong with any other.
 */
export function signingKey(pkcs8: Uint8Array): SigningKey {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" });
  } catch (error) {
    throw new TypeError(`Cannot read private key: ${(error as Error).message}`);
  }
  let schemes: readonly SignatureScheme[];
  if (key.asymmetricKeyType === "ec") {
    const curve = ecCurve(key);
    if (curve === undefined) {
      throw new TypeError(
        `Cannot use EC key on ${key.asymmetricKeyDetails?.namedCurve}: only P-256 and P-384`,
      );
    }
    // In TLS 1.2 a scheme is a hash and a signature algorithm, not a curve
    // (RFC 5246 §7.4.1.4.1): either hash serves either curve, the one that
    // matches the key's size first.
    schemes = curve === "P-256"
      ? ["ecdsa_secp256r1_sha256", "ecdsa_secp384r1_sha384"]
      : ["ecdsa_secp384r1_sha384", "ecdsa_secp256r1_sha256"];
  } else if (key.asymmetricKeyType === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new TypeError(`Cannot use RSA key of ${bits} bits: at least ${MIN_RSA_BITS}`);
    }
    schemes = RSA_SCHEMES;
  } else {
    throw new TypeError(`Cannot use ${key.asymmetricKeyType} key: only EC and RSA`);
  }
  const curve = ecCurve(key);
  const signing: SigningKey = {
    type: key.asymmetricKeyType === "ec" ? "ec" : "rsa",
    ...(curve === undefined ? {} : { curve: curve === "P-256" ? "secp256r1" : "secp384r1" }),
    schemes,
    sign(scheme: SignatureScheme, data: Uint8Array): Uint8Array {
      if (!schemes.includes(scheme)) {
        throw new TypeError(`Cannot sign with ${scheme}: not a scheme of this key`);
      }
      return new Uint8Array(sign(SCHEMES[scheme].hash, data, options(key, scheme)));
    },
  };
  KEY_OBJECTS.set(signing, key);
  return signing;
}

/** The native key behind each signing key made here, for signatures over a transcript. */
const KEY_OBJECTS = new WeakMap<SigningKey, KeyObject>();

/**
 * A signature over the handshake messages as they come (CertificateVerify,
 * RFC 5246 §7.4.8): both hashes run, since the scheme is known only when the
 * message arrives; each holds a hash state, not the messages.
 */
export function transcriptSignature(role: "sign" | "verify"): TranscriptSignature {
  // One side only ever signs, the other only verifies: two hash streams, not four.
  const streams = role === "sign"
    ? { sha256: createSign("sha256"), sha384: createSign("sha384") }
    : { sha256: createVerify("sha256"), sha384: createVerify("sha384") };
  let used = false;
  const once = (wanted: "sign" | "verify") => {
    if (used) throw new Error("Cannot use a transcript signature twice");
    if (wanted !== role) throw new Error(`Cannot ${wanted} with a transcript made to ${role}`);
    used = true;
  };
  return {
    update(data: Uint8Array): void {
      // Once signed or verified its messages are settled: later ones (the
      // CertificateVerify itself, the Finished) are not its business.
      if (used) return;
      streams.sha256.update(data);
      streams.sha384.update(data);
    },
    verify(spki: Uint8Array, scheme: SignatureScheme, signature: Uint8Array): boolean {
      once("verify");
      try {
        const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
        if (!fits(key, scheme)) return false;
        const verifier = streams[SCHEMES[scheme].hash] as ReturnType<typeof createVerify>;
        return verifier.verify(options(key, scheme), signature);
      } catch {
        return false;
      }
    },
    sign(signingKey: SigningKey, scheme: SignatureScheme): Uint8Array {
      once("sign");
      const key = KEY_OBJECTS.get(signingKey);
      if (key === undefined || !signingKey.schemes.includes(scheme)) {
        throw new TypeError(`Cannot sign the transcript with ${scheme}: not this key's`);
      }
      const signer = streams[SCHEMES[scheme].hash] as ReturnType<typeof createSign>;
      return new Uint8Array(signer.sign(options(key, scheme)));
    },
  };
}

/**
 * Whether `signature` over `data` verifies with `scheme` under the public
 * key in `spki` (a DER SubjectPublicKeyInfo). False, never a throw, for a
 * malformed key or signature, a key that does not fit the scheme (an RSA
 * key under 2048 bits or for an ECDSA scheme, an EC key on a curve other
 * than P-256 and P-384 or for an RSA scheme), or an ECDSA signature whose
 * r or s is out of range. As in TLS 1.2, an ECDSA scheme names the hash,
 * not the curve.
 */
export function verifySignature(
  spki: Uint8Array,
  scheme: SignatureScheme,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    if (!fits(key, scheme)) return false;
    return verify(SCHEMES[scheme].hash, data, options(key, scheme), signature);
  } catch {
    return false;
  }
}

/**
 * The schemes `key` signs a TLS 1.3 CertificateVerify with, preferred first
 * (RFC 8446 §4.2.3): an ECDSA scheme names its curve there, so an EC key has
 * the one of its curve; RSA signs with PSS only, never PKCS#1 v1.5.
 */
export function schemes13(key: SigningKey): SignatureScheme[] {
  if (key.type === "ec") {
    return key.curve === "secp256r1" ? ["ecdsa_secp256r1_sha256"] : ["ecdsa_secp384r1_sha384"];
  }
  return key.schemes.filter((s) => SCHEMES[s].kind === "rsa_pss");
}

/** The schemes we check a TLS 1.3 CertificateVerify of, preferred first. */
export const VERIFY_SCHEMES_13: readonly SignatureScheme[] = [
  "ecdsa_secp256r1_sha256",
  "ecdsa_secp384r1_sha384",
  "rsa_pss_rsae_sha256",
  "rsa_pss_rsae_sha384",
];

/**
 * {@link verifySignature} under TLS 1.3's rules (RFC 8446 §4.2.3, §4.4.3):
 * an ECDSA scheme only with a key on its curve, RSA only with PSS.
 */
export function verifySignature13(
  spki: Uint8Array,
  scheme: SignatureScheme,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  const kind = SCHEMES[scheme].kind;
  if (kind === "rsa_pkcs1") return false;
  if (kind === "ecdsa") {
    let curve;
    try {
      curve = ecCurve(createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }));
    } catch {
      return false;
    }
    const wanted = scheme === "ecdsa_secp256r1_sha256" ? "P-256" : "P-384";
    if (curve !== wanted) return false;
  }
  return verifySignature(spki, scheme, data, signature);
}
