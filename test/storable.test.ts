// What an attempt row can hold, how a response body becomes text, which write failures are
// retried as they are, and the bounds on timer delays: pure functions, table-driven.
import { decodeBody } from "../src/delivery/client";
import { requestSpacingMs } from "../src/model/rate-limit";
import { StorableRow, storableText } from "../src/dispatch/storable";
import { isTransient } from "../src/dispatch/store-batch";
import { MAX_TIMER_MS, timerMs } from "../src/util/timer";

describe("storableText", () => {
  it.each([
    ["plain", "héllo 😀", "héllo 😀", 0],
    ["a NUL", "a\u0000b", "a\uFFFDb", 1],
    ["a lone high surrogate", "x\uD800y", "x\uFFFDy", 1],
    ["a lone low surrogate", "\uDC00", "\uFFFD", 1],
    ["a high surrogate at the end", "ab\uD83D", "ab\uFFFD", 1],
    ["reversed pair", "\uDE00\uD83D", "\uFFFD\uFFFD", 2],
    ["CR/LF and other controls kept", "a\r\n\u0001\u007f", "a\r\n\u0001\u007f", 0],
  ])("%s", (_name, input, text, replaced) => {
    expect(storableText(input)).toEqual({ text, replaced });
  });

  it("notes each part it changed, and header names too", () => {
    const row = new StorableRow(["earlier note"]);
    expect(row.text("response body", "ok")).toBe("ok");
    expect(row.headers("response headers", { "x-\u0000": "v\uD800" })).toBe(JSON.stringify({ "x-\uFFFD": "v\uFFFD" }));
    expect(row.note()).toBe("earlier note; response headers: 2 NUL or unpaired surrogate character(s) replaced with U+FFFD");
    expect(new StorableRow().note()).toBeNull();
  });

  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.0.0.1", "::ffff:10.0.0.1"],
    ["fe80::1%eth0", "fe80::1"],
    ["not an address", null],
    [null, null],
  ])("keeps the address %p as %p", (input, out) => {
    expect(new StorableRow().address(input)).toBe(out);
  });
});

describe("decodeBody", () => {
  it.each([
    ["valid UTF-8", Buffer.from("héllo"), undefined, false, "héllo", null],
    ["invalid UTF-8", Buffer.from([0x61, 0xff, 0x62]), "text/plain", false, "a\uFFFDb", /not valid utf-8/],
    ["a cut at the byte cap inside a character", Buffer.from("aé").subarray(0, 2), undefined, true, "a", null],
    ["the same cut in a complete body", Buffer.from("aé").subarray(0, 2), undefined, false, "a\uFFFD", /not valid utf-8/],
    ["a declared charset", Buffer.from("héllo", "utf16le"), 'text/plain; charset="UTF-16LE"', false, "héllo", null],
    ["windows-1252", Buffer.from([0x63, 0x61, 0x66, 0xe9]), "text/html; charset=iso-8859-1", false, "café", null],
    ["an unknown charset, read as UTF-8", Buffer.from("ok"), "text/plain; charset=klingon", false, "ok", null],
    ["NUL bytes are text here (the row replaces them)", Buffer.from("a\u0000b"), undefined, false, "a\u0000b", null],
  ])("%s", (_name, bytes, contentType, truncated, text, note) => {
    const r = decodeBody(bytes, contentType, truncated);
    expect(r.text).toBe(text);
    if (note === null) expect(r.note).toBeNull();
    else expect(r.note).toMatch(note);
  });
});

describe("isTransient", () => {
  const pg = (code: string) => Object.assign(new Error(code), { code, severity: "ERROR" });
  it.each([
    ["connection lost (postgres.js)", Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" }), true],
    ["connect timeout", Object.assign(new Error("x"), { code: "CONNECT_TIMEOUT" }), true],
    ["refused", Object.assign(new Error("x"), { code: "ECONNREFUSED" }), true],
    ["admin shutdown 57P01", pg("57P01"), true],
    ["starting up 57P03", pg("57P03"), true],
    ["too many clients 53300", pg("53300"), true],
    ["deadlock 40P01", pg("40P01"), true],
    ["statement timeout 57014", pg("57014"), false],
    ["NUL in text 22021", pg("22021"), false],
    ["unsupported unicode escape 22P05", pg("22P05"), false],
    ["a raised exception P0001", pg("P0001"), false],
    ["a bug (TypeError)", new TypeError("x is undefined"), false],
    ["postgres.js refusing a value", Object.assign(new Error("x"), { code: "UNDEFINED_VALUE" }), false],
    ["not an error", "boom", false],
  ])("%s", (_name, e, transient) => {
    expect(isTransient(e)).toBe(transient);
  });
});

describe("timer bounds", () => {
  it.each([
    [1500, 1500],
    [0.2, 1],
    [-5, 0],
    [Number.NaN, 0],
    [2 ** 31, MAX_TIMER_MS],
    [1e10, MAX_TIMER_MS],
    [Infinity, MAX_TIMER_MS],
  ])("timerMs(%p) is %p", (ms, out) => {
    expect(timerMs(ms)).toBe(out);
  });

  it.each([
    [2, 500],
    [0.001, 1_000_000],
    [0.0000001, 1_000_000],
    [0, 1_000_000],
    [-1, 1_000_000],
    [Number.NaN, 1_000_000],
    [1e9, 0.1],
    [Infinity, 0.1],
  ])("a rate of %p per second spaces requests %p ms apart", (rate, ms) => {
    expect(requestSpacingMs(rate)).toBe(ms);
    expect(requestSpacingMs(rate)).toBeLessThanOrEqual(MAX_TIMER_MS);
  });
});
