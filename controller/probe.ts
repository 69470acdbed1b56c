/**
 * The readiness probe of a worker's OpenAI endpoint.
 *
 * Rules: the worker's token goes only to the worker — with a pin, only over https and only to a server that
 * presents exactly the pinned certificate; every call is bounded (3 s to connect, to headers and to body).
 */
import { Agent, request } from "undici";
import { type CertificatePin, pinnedTlsOptions } from "../core/x509";

/**
 * A worker is ready when its OpenAI endpoint answers /v1/models with its token. With a pin, only over https and
 * only to a server presenting exactly that certificate — the token is never sent to anything else.
 */
export async function probeOpenAi(baseUrl: string, token: string, pin?: CertificatePin): Promise<boolean> {
  if (pin && !/^https:\/\//i.test(baseUrl)) return false;
  const dispatcher = pin ? new Agent({ connect: { ...pinnedTlsOptions(pin), timeout: 3_000 } }) : undefined;
  try {
    const response = await request(`${baseUrl}/models`, {
      headers: { authorization: `Bearer ${token}` },
      headersTimeout: 3_000,
      bodyTimeout: 3_000,
      ...(dispatcher ? { dispatcher } : {}),
    });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  } finally {
    await dispatcher?.destroy().catch(() => undefined);
  }
}
