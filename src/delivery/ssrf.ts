// SSRF guard: webhook URLs are user input, so by default they may not point at loopback,
// private networks or cloud metadata. Literal hosts are checked here; names are checked on the
// address actually connected to (see the lookup wrapper in client.ts).
import type { LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import { DomainError } from "../errors";

const ALLOW_HINT = "set WEBHOOKS_ALLOW_PRIVATE_TARGETS=true to allow it";

/** The ipaddr.js range name of an address, after unwrapping IPv4-mapped IPv6; null if not an IP. */
function rangeOf(ip: string): string | null {
  const bare = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  if (!ipaddr.isValid(bare)) return null;
  // process() turns ::ffff:127.0.0.1 into 127.0.0.1, which would otherwise look "unicast"-ish.
  const addr = ipaddr.process(bare);
  // IPv4-compatible (::7f00:1, which is how URL spells [::127.0.0.1]): deprecated (RFC 4291),
  // unknown to ipaddr.js, and an IPv4 address in disguise. :: and ::1 keep their own ranges.
  // The other IPv6 forms that carry an IPv4 address (NAT64 64:ff9b::/96 and /48, 6to4
  // 2002::/16, Teredo, IPv4-translated ::ffff:0:0:0/96) have ranges of their own, so they are
  // refused whatever address they embed.
  if (addr.kind() === "ipv6" && addr.range() === "unicast" && (addr as ipaddr.IPv6).parts.slice(0, 6).every((p) => p === 0)) {
    return "ipv4Compatible";
  }
  return addr.range();
}

/**
 * True for every address that is not plain global unicast (loopback, private, link-local incl.
 * 169.254.169.254, unique-local, CGNAT, multicast, reserved, …). Anything unparseable counts
 * as private: the guard fails closed.
 */
export function isPrivateAddress(ip: string): boolean {
  return rangeOf(ip) !== "unicast";
}

export class PrivateTargetError extends DomainError {
  override name = "PrivateTargetError";
  /**
   * @param target the host from the URL
   * @param range why it is refused (the ipaddr.js range, e.g. "loopback")
   * @param address the resolved address, when target is a name
   */
  constructor(
    readonly target: string,
    readonly range: string,
    readonly address: string | null = null,
  ) {
    super(
      "private_target",
      address === null || address === target
        ? `target ${target} is a private address (${range}); ${ALLOW_HINT}`
        : `target ${target} resolves to ${address}, a private address (${range}); ${ALLOW_HINT}`,
    );
  }
}

/** Throws unless the URL is http(s) and, when private targets are not allowed, its host is public. */
export function assertUrlAllowed(url: string, allowPrivate: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`invalid URL ${JSON.stringify(url)}: expected an absolute http:// or https:// URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new Error(`unsupported URL scheme ${parsed.protocol} in ${url}: only http:// and https:// are allowed`);
  }
  if (allowPrivate) return;
  // URL already normalised odd IPv4 spellings (2130706433, 0x7f.1) to dotted decimal.
  const host = parsed.hostname;
  const range = rangeOf(host);
  if (range !== null) {
    if (range !== "unicast") throw new PrivateTargetError(host, range);
    return;
  }
  // A trailing dot names the same host; resolvers map *.localhost to loopback (RFC 6761).
  const name = host.toLowerCase().replace(/\.$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) throw new PrivateTargetError(host, "loopback");
}

/**
 * Wraps a resolver so a name that resolves to any private address is refused before the
 * socket connects. This is the check that matters for names: it sees the very addresses
 * net.connect will use, so DNS rebinding between a check and the connect cannot slip through.
 */
export function guardedLookup(base: LookupFunction, allowPrivate: boolean): LookupFunction {
  if (allowPrivate) return base;
  return (hostname, options, callback) => {
    base(hostname, options, (err, address, family) => {
      if (err) {
        callback(err, address, family);
        return;
      }
      const addresses = typeof address === "string" ? [address] : address.map((a) => a.address);
      for (const a of addresses) {
        const range = rangeOf(a);
        if (range !== "unicast") {
          callback(new PrivateTargetError(hostname, range ?? "unparseable", a), address, family);
          return;
        }
      }
      callback(null, address, family);
    });
  };
}
