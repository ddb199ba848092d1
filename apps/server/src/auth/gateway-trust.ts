import { createHash, timingSafeEqual } from "node:crypto";
import { BlockList, isIPv4 } from "node:net";

export const GATEWAY_SECRET_HEADER = "x-gateway-secret";

export interface GatewayTrustOptions {
  secret: string | undefined;
  trustedProxies: string[];
}

/**
 * Decides whether a request's `x-forward-*` headers come from the API
 * gateway: it carries the shared secret, or it comes from a trusted proxy
 * address. With neither configured, nothing is trusted.
 */
export type GatewayTrust = (remoteAddress: string | undefined, secretHeader: string | undefined) => boolean;

export function createGatewayTrust(options: GatewayTrustOptions): GatewayTrust {
  const proxies = new BlockList();
  for (const entry of options.trustedProxies) {
    const [addr = "", bits] = entry.split("/");
    const type = isIPv4(addr) ? "ipv4" : "ipv6";
    if (bits === undefined) proxies.addAddress(addr, type);
    else proxies.addSubnet(addr, Number(bits), type);
  }
  const secretDigest = options.secret === undefined ? undefined : digest(options.secret);

  return (remoteAddress, secretHeader) => {
    if (secretDigest !== undefined && secretHeader !== undefined) {
      if (timingSafeEqual(digest(secretHeader), secretDigest)) return true;
    }
    if (options.trustedProxies.length > 0 && remoteAddress !== undefined) {
      const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(remoteAddress)?.[1];
      if (v4mapped !== undefined) return proxies.check(v4mapped, "ipv4");
      return proxies.check(remoteAddress, isIPv4(remoteAddress) ? "ipv4" : "ipv6");
    }
    return false;
  };
}

// Equal-length digests make the comparison constant-time whatever the header's length.
function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
