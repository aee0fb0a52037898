/**
 * A test PKI made with `openssl` in a temporary folder, once per process: a
 * CA; server certificates on P-256, P-384 and RSA-2048 (SAN localhost and
 * 127.0.0.1); an expired one; one from a CA nobody trusts; an RSA-1024 key;
 * a key that belongs to no certificate.
 */

/** Paths of the files, and the folder. */
export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly ecCert: string;
  readonly ecKey: string;
  readonly p384Cert: string;
  readonly p384Key: string;
  readonly rsaCert: string;
  readonly rsaKey: string;
  readonly expiredCert: string;
  readonly untrustedCert: string;
  readonly untrustedKey: string;
  readonly rsa1024Cert: string;
  readonly rsa1024Key: string;
  readonly strayKey: string;
  /** A leaf issued by an intermediate CA, and the file with both (leaf first). */
  readonly chainedCert: string;
  readonly chainedKey: string;
  readonly chainedBundle: string;
  /** A client certificate (CN=device-1, clientAuth), issued by the CA. */
  readonly clientCert: string;
  readonly clientKey: string;
  /**
   * An RSA CA, and an RSA leaf it signed (sha256WithRSA, SAN localhost and
   * 127.0.0.1): pion/dtls v2 verifies an RSA ServerKeyExchange only when the
   * certificate itself carries an RSA signature (see tests/e2e/pion_test.ts).
   */
  readonly rsaCaCert: string;
  readonly rsaByRsaCert: string;
  readonly rsaByRsaKey: string;
}

let made: TestPki | undefined;

function openssl(dir: string, args: string[]): void {
  const out = new Deno.Command("openssl", { args, cwd: dir, stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Makes (once) and returns the test PKI. Needs `openssl` on the path. */
export function testPki(): TestPki {
  if (made !== undefined) return made;
  const dir = Deno.makeTempDirSync({ prefix: "dtls-pki-" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  Deno.writeTextFileSync(
    `${dir}/server.ext`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" +
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
  );
  const ca = (name: string) => {
    openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`]);
    openssl(dir, [
      "req",
      "-x509",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      `/CN=${name}`,
      "-days",
      "30",
      "-out",
      `${name}.pem`,
    ]);
  };
  // The output first: genrsa takes its size last.
  const key = (name: string, kind: string[]) =>
    openssl(dir, [kind[0]!, "-out", `${name}.key`, ...kind.slice(1)]);
  const issue = (
    name: string,
    issuer: string,
    days: string[],
    subject = "/CN=localhost",
    extensions = "server.ext",
  ) => {
    openssl(dir, [
      "req",
      "-new",
      "-key",
      `${name}.key`,
      "-subj",
      subject,
      "-out",
      `${name}.csr`,
    ]);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${issuer}.pem`,
      "-CAkey",
      `${issuer}.key`,
      "-CAcreateserial",
      ...days,
      "-extfile",
      extensions,
      "-out",
      `${name}.pem`,
    ]);
  };
  const ec = ["ecparam", "-name", "prime256v1", "-genkey", "-noout"];
  ca("ca");
  ca("untrusted-ca");
  key("ec", ec);
  issue("ec", "ca", ["-days", "30"]);
  key("p384", ["ecparam", "-name", "secp384r1", "-genkey", "-noout"]);
  issue("p384", "ca", ["-days", "30"]);
  key("rsa", ["genrsa", "2048"]);
  issue("rsa", "ca", ["-days", "30"]);
  key("rsa1024", ["genrsa", "1024"]);
  issue("rsa1024", "ca", ["-days", "30"]);
  key("expired", ec);
  // Valid for a day, ten days ago (openssl 3.0's x509 has no -not_before).
  openssl(dir, [
    "req",
    "-new",
    "-key",
    "expired.key",
    "-subj",
    "/CN=localhost",
    "-out",
    "expired.csr",
  ]);
  openssl(dir, [
    "ca",
    "-batch",
    "-selfsign",
    "-keyfile",
    "expired.key",
    "-in",
    "expired.csr",
    "-startdate",
    "20260101000000Z",
    "-enddate",
    "20260102000000Z",
    "-config",
    writeCaConfig(dir),
    "-out",
    "expired.pem",
  ]);
  key("untrusted", ec);
  issue("untrusted", "untrusted-ca", ["-days", "30"]);
  key("stray", ec);
  Deno.writeTextFileSync(`${dir}/intermediate.ext`, "basicConstraints=critical,CA:TRUE\n");
  key("intermediate", ec);
  issue("intermediate", "ca", ["-days", "30"], "/CN=Intermediate", "intermediate.ext");
  key("chained", ec);
  issue("chained", "intermediate", ["-days", "30"]);
  Deno.writeTextFileSync(
    `${dir}/chained-bundle.pem`,
    Deno.readTextFileSync(`${dir}/chained.pem`) + Deno.readTextFileSync(`${dir}/intermediate.pem`),
  );
  Deno.writeTextFileSync(
    `${dir}/client.ext`,
    "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n",
  );
  key("client", ec);
  issue("client", "ca", ["-days", "30"], "/CN=device-1", "client.ext");
  key("rsa-ca", ["genrsa", "2048"]);
  openssl(dir, [
    "req",
    "-x509",
    "-new",
    "-key",
    "rsa-ca.key",
    "-subj",
    "/CN=rsa-ca",
    "-days",
    "30",
    "-out",
    "rsa-ca.pem",
  ]);
  key("rsa-by-rsa", ["genrsa", "2048"]);
  issue("rsa-by-rsa", "rsa-ca", ["-days", "30", "-sha256"]);
  made = {
    dir,
    caCert: `${dir}/ca.pem`,
    ecCert: `${dir}/ec.pem`,
    ecKey: `${dir}/ec.key`,
    p384Cert: `${dir}/p384.pem`,
    p384Key: `${dir}/p384.key`,
    rsaCert: `${dir}/rsa.pem`,
    rsaKey: `${dir}/rsa.key`,
    expiredCert: `${dir}/expired.pem`,
    untrustedCert: `${dir}/untrusted.pem`,
    untrustedKey: `${dir}/untrusted.key`,
    rsa1024Cert: `${dir}/rsa1024.pem`,
    rsa1024Key: `${dir}/rsa1024.key`,
    strayKey: `${dir}/stray.key`,
    chainedCert: `${dir}/chained.pem`,
    chainedKey: `${dir}/chained.key`,
    chainedBundle: `${dir}/chained-bundle.pem`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
    rsaCaCert: `${dir}/rsa-ca.pem`,
    rsaByRsaCert: `${dir}/rsa-by-rsa.pem`,
    rsaByRsaKey: `${dir}/rsa-by-rsa.key`,
  };
  return made;
}

/** A minimal `openssl ca` configuration, for the one certificate that needs dates. */
function writeCaConfig(dir: string): string {
  Deno.mkdirSync(`${dir}/ca-db`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/ca-db/index.txt`, "");
  Deno.writeTextFileSync(`${dir}/ca-db/serial`, "01\n");
  const path = `${dir}/ca.cnf`;
  Deno.writeTextFileSync(
    path,
    `[ca]\ndefault_ca = test\n[test]\ndir = ${dir}/ca-db\ndatabase = $dir/index.txt\n` +
      `serial = $dir/serial\nnew_certs_dir = $dir\ndefault_md = sha256\npolicy = any\n` +
      `[any]\ncommonName = supplied\n`,
  );
  return path;
}
