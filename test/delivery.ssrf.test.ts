// The SSRF guard: which targets are refused unless private targets are allowed.
import type { LookupAddress } from "node:dns";
import type { LookupFunction } from "node:net";
import { assertUrlAllowed, guardedLookup, isPrivateAddress, PrivateTargetError } from "../src/delivery/ssrf";

describe("isPrivateAddress", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "cloud metadata (link-local)"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["0.0.0.0", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["224.0.0.1", "multicast"],
    ["240.0.0.1", "reserved"],
    ["::1", "IPv6 loopback"],
    ["::", "IPv6 unspecified"],
    ["fe80::1", "IPv6 link-local"],
    ["fd12:3456::1", "IPv6 unique-local"],
    ["ff02::1", "IPv6 multicast"],
    ["::ffff:127.0.0.1", "IPv4-mapped loopback"],
    ["::ffff:a9fe:a9fe", "IPv4-mapped metadata, hex form"],
    ["not-an-ip", "unparseable (fails closed)"],
    // IPv6 spellings that carry an IPv4 address
    ["::7f00:1", "IPv4-compatible loopback (how URL spells [::127.0.0.1])"],
    ["::a9fe:a9fe", "IPv4-compatible metadata"],
    ["::808:808", "IPv4-compatible, even of a public address (deprecated, never routed)"],
    ["::ffff:0:7f00:1", "IPv4-translated loopback"],
    ["64:ff9b::7f00:1", "NAT64 of loopback"],
    ["64:ff9b::a00:1", "NAT64 of a private address"],
    ["64:ff9b:1::a00:1", "local-use NAT64"],
    ["2002:7f00:1::1", "6to4 of loopback"],
    ["2002:a00:1::1", "6to4 of a private address"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"],
  ])("%s is private (%s)", (ip) => {
    expect(isPrivateAddress(ip)).toBe(true);
  });

  it.each(["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])("%s is public", (ip) => {
    expect(isPrivateAddress(ip)).toBe(false);
  });
});

describe("assertUrlAllowed", () => {
  it("refuses non-http schemes and non-URLs with a plain error naming the problem", () => {
    for (const [url, msg] of [
      ["ftp://example.com/x", /scheme ftp:/],
      ["file:///etc/passwd", /scheme file:/],
      ["not a url", /invalid URL/],
    ] as const) {
      let err: unknown;
      try {
        assertUrlAllowed(url, true);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(PrivateTargetError);
      expect((err as Error).message).toMatch(msg);
    }
  });

  it("names the address, its range and the setting that allows it", () => {
    expect(() => assertUrlAllowed("http://127.0.0.1:8080/hook", false)).toThrow(
      "target 127.0.0.1 is a private address (loopback); set WEBHOOKS_ALLOW_PRIVATE_TARGETS=true to allow it",
    );
  });

  it.each([
    "http://127.0.0.1/",
    "https://10.0.0.5/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:3000/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::127.0.0.1]/", // IPv4-compatible: URL keeps it as [::7f00:1]
    "http://[::169.254.169.254]/",
    "http://[0:0:0:0:0:0:127.0.0.1]/",
    "http://[::ffff:0:127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:c0a8:101::1]/", // 6to4 of 192.168.1.1
    "http://2130706433/", // 127.0.0.1 as one decimal number
    "http://0x7f.1/",
    "http://localhost:3000/",
    "http://LOCALHOST./",
    "http://api.localhost/",
  ])("refuses %s unless private targets are allowed", (url) => {
    expect(() => assertUrlAllowed(url, false)).toThrow(PrivateTargetError);
    expect(() => assertUrlAllowed(url, true)).not.toThrow();
  });

  it.each(["https://example.com/hook", "http://8.8.8.8/", "https://[2606:4700:4700::1111]/", "http://localhost.example.com/"])(
    "allows public target %s",
    (url) => {
      expect(() => assertUrlAllowed(url, false)).not.toThrow();
    },
  );

  it("gives PrivateTargetError the private_target domain code", () => {
    try {
      assertUrlAllowed("http://10.0.0.1/", false);
      throw new Error("expected a refusal");
    } catch (e) {
      expect(e).toBeInstanceOf(PrivateTargetError);
      expect((e as PrivateTargetError).code).toBe("private_target");
      expect((e as PrivateTargetError).httpStatus).toBe(400);
    }
  });
});

describe("guardedLookup", () => {
  /** A resolver answering from a fixed table, in both the single and the `all` shape. */
  function fakeResolver(table: Record<string, string[]>): LookupFunction {
    return (hostname, options, callback) => {
      const addrs: LookupAddress[] = (table[hostname] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
      const first = addrs[0];
      if (!first) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }), "", 4);
      else if (options.all) callback(null, addrs);
      else callback(null, first.address, first.family);
    };
  }
  const resolver = fakeResolver({
    "public.test": ["8.8.8.8", "2606:4700:4700::1111"],
    "mixed.test": ["8.8.8.8", "10.0.0.7"],
    "meta.test": ["169.254.169.254"],
    "compat.test": ["2606:4700:4700::1111", "::7f00:1"],
  });

  function run(lookup: LookupFunction, host: string, all: boolean): Promise<{ err: Error | null; address: unknown }> {
    return new Promise((resolve) => lookup(host, { all }, (err, address) => resolve({ err, address })));
  }

  it("passes public answers through unchanged, in both shapes", async () => {
    const guarded = guardedLookup(resolver, false);
    expect(await run(guarded, "public.test", false)).toEqual({ err: null, address: "8.8.8.8" });
    const all = await run(guarded, "public.test", true);
    expect(all.err).toBeNull();
    expect(all.address).toHaveLength(2);
  });

  it("refuses a name when any resolved address is private", async () => {
    const guarded = guardedLookup(resolver, false);
    const mixed = await run(guarded, "mixed.test", true);
    expect(mixed.err).toBeInstanceOf(PrivateTargetError);
    expect(mixed.err?.message).toBe(
      "target mixed.test resolves to 10.0.0.7, a private address (private); set WEBHOOKS_ALLOW_PRIVATE_TARGETS=true to allow it",
    );
    expect((await run(guarded, "meta.test", false)).err).toBeInstanceOf(PrivateTargetError);
    const compat = await run(guarded, "compat.test", true);
    expect(compat.err).toBeInstanceOf(PrivateTargetError);
    expect(compat.err?.message).toContain("resolves to ::7f00:1, a private address (ipv4Compatible)");
  });

  it("passes resolver errors through and allows everything when private targets are allowed", async () => {
    expect((await run(guardedLookup(resolver, false), "nope.test", false)).err?.message).toMatch(/ENOTFOUND/);
    expect(await run(guardedLookup(resolver, true), "meta.test", false)).toEqual({ err: null, address: "169.254.169.254" });
  });
});
