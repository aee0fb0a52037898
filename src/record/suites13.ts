/**
 * The DTLS 1.3 cipher suites (RFC 8446 §B.4, RFC 9147 §4.2.3), as data: the
 * AEAD and key length of record protection, the hash of the key schedule,
 * and the cipher that encrypts record numbers.
 *
 * @module
 */

import type { AeadName, HashName } from "../crypto/provider.ts";

/** A TLS 1.3 cipher suite's parameters. */
export interface CipherSuite13 {
  /** IANA code point. */
  readonly id: number;
  /** IANA name. */
  readonly name: string;
  /** The key schedule's hash (HKDF, transcript, Finished). */
  readonly hash: HashName;
  /** Record protection. */
  readonly aead: AeadName;
  /** Bytes of the AEAD key (and of the record number key). */
  readonly keyLength: number;
  /** What masks record numbers (RFC 9147 §4.2.3). */
  readonly snCipher: "aes" | "chacha20";
}

/** Every DTLS 1.3 suite, in our order of preference. */
export const SUITES_13: readonly CipherSuite13[] = [
  {
    id: 0x1301,
    name: "TLS_AES_128_GCM_SHA256",
    hash: "sha256",
    aead: "aes-gcm",
    keyLength: 16,
    snCipher: "aes",
  },
  {
    id: 0x1303,
    name: "TLS_CHACHA20_POLY1305_SHA256",
    hash: "sha256",
    aead: "chacha20-poly1305",
    keyLength: 32,
    snCipher: "chacha20",
  },
  {
    id: 0x1302,
    name: "TLS_AES_256_GCM_SHA384",
    hash: "sha384",
    aead: "aes-gcm",
    keyLength: 32,
    snCipher: "aes",
  },
  {
    id: 0x1304,
    name: "TLS_AES_128_CCM_SHA256",
    hash: "sha256",
    aead: "aes-ccm",
    keyLength: 16,
    snCipher: "aes",
  },
  {
    id: 0x1305,
    name: "TLS_AES_128_CCM_8_SHA256",
    hash: "sha256",
    aead: "aes-ccm-8",
    keyLength: 16,
    snCipher: "aes",
  },
];

/** The DTLS 1.3 suite of a code point, if we have it. */
export function suite13ById(id: number): CipherSuite13 | undefined {
  return SUITES_13.find((s) => s.id === id);
}

/**
 * How many records one key may protect before it must be replaced, and how
 * many forgeries it may see before the connection must close (RFC 9147
 * §4.5.3, the limits of RFC 8446 §5.5 and of its appendix on CCM): the
 * confidentiality limit of AES-GCM is 2^24.5 full records, CCM's 2^23.5; the
 * integrity limit of GCM and ChaCha20-Poly1305 is 2^36, CCM's 2^23.5 and
 * CCM_8's 2^7.
 */
export function recordLimits(suite: CipherSuite13): {
  readonly confidentiality: number;
  readonly integrity: number;
} {
  switch (suite.aead) {
    case "aes-gcm":
      return { confidentiality: Math.floor(2 ** 24.5), integrity: 2 ** 36 };
    case "chacha20-poly1305":
      // RFC 8446 §5.5: ChaCha20-Poly1305's limit is beyond 2^48 records.
      return { confidentiality: 2 ** 48, integrity: 2 ** 36 };
    case "aes-ccm":
      return { confidentiality: Math.floor(2 ** 23.5), integrity: Math.floor(2 ** 23.5) };
    case "aes-ccm-8":
      return { confidentiality: Math.floor(2 ** 23.5), integrity: 2 ** 7 };
  }
}
