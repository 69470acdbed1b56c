import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import { connect, createServer, type Server } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createWorkerCertificate,
  pinnedTlsOptions,
  sameFingerprint,
  type WorkerCertificate,
} from "../../core/x509";

describe("worker certificates", () => {
  it("is a self-signed X.509 v3 certificate Node parses and verifies, with the fingerprint it reports", () => {
    const now = Date.UTC(2030, 0, 15, 12, 0, 0);
    const c = createWorkerCertificate("w0a1b2c3d4e5f", { nowMs: now });
    const x = new X509Certificate(c.certPem);
    expect(x.subject).toBe("CN=w0a1b2c3d4e5f");
    expect(x.issuer).toBe("CN=w0a1b2c3d4e5f");
    expect(x.subjectAltName).toBe("DNS:w0a1b2c3d4e5f");
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkIssued(x)).toBe(true);
    expect(x.fingerprint256).toBe(c.fingerprint256);
    expect(c.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(new Date(x.validFrom).getTime()).toBe(now - 5 * 60_000);
    expect(new Date(x.validTo).getTime()).toBe(now + 30 * 86_400_000);
    expect(x.serialNumber).toMatch(/^[0-9A-F]{32}$/);
    // the key is PKCS#8 P-256 and belongs to the certificate
    expect(c.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(c.keyPem);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(x.checkPrivateKey(key)).toBe(true);
    expect(createPublicKey(key).export({ type: "spki", format: "pem" })).toBe(
      x.publicKey.export({ type: "spki", format: "pem" }),
    );
  });

  it("each worker gets its own key, serial and fingerprint", () => {
    const a = createWorkerCertificate("wa");
    const b = createWorkerCertificate("wa");
    expect(a.fingerprint256).not.toBe(b.fingerprint256);
    expect(a.keyPem).not.toBe(b.keyPem);
    expect(new X509Certificate(a.certPem).serialNumber).not.toBe(new X509Certificate(b.certPem).serialNumber);
  });

  it("uses GeneralizedTime after 2049 and refuses a worker id that is not a DNS name", () => {
    const c = createWorkerCertificate("w1", { nowMs: Date.UTC(2049, 11, 20), validityDays: 30 });
    expect(new X509Certificate(c.certPem).validTo).toMatch(/2050 GMT$/);
    expect(() => createWorkerCertificate("bad id")).toThrow(/DNS name/);
  });

  it("compares fingerprints without regard to case or separators", () => {
    const f = createWorkerCertificate("w1").fingerprint256;
    expect(sameFingerprint(f, f.toLowerCase().replace(/:/g, ""))).toBe(true);
    expect(sameFingerprint(f, createWorkerCertificate("w1").fingerprint256)).toBe(false);
    expect(sameFingerprint("", "")).toBe(false);
    expect(sameFingerprint(undefined, undefined)).toBe(false);
  });
});

describe("pinning over a real TLS connection", () => {
  let served: WorkerCertificate;
  let other: WorkerCertificate;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    served = createWorkerCertificate("wserved");
    other = createWorkerCertificate("wother");
    server = createServer({ cert: served.certPem, key: served.keyPem }, (socket) => socket.end("hello"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const talk = (pin: { certPem: string; fingerprint256: string }) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, ...pinnedTlsOptions(pin) }, () => {
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (d: string) => {
          text += d;
        });
        socket.on("end", () => resolve(text));
      });
      socket.on("error", reject);
    });

  it("a client pinning the served certificate connects", async () => {
    await expect(talk(served)).resolves.toBe("hello");
  });

  it("a client pinning a different certificate is refused by the chain check", async () => {
    await expect(talk(other)).rejects.toThrow(/self.signed|unable to verify|certificate/i);
  });

  it("the right certificate as CA but another fingerprint is refused by the pin check", async () => {
    await expect(talk({ certPem: served.certPem, fingerprint256: other.fingerprint256 })).rejects.toThrow(
      /not the pinned one/,
    );
  });
});
