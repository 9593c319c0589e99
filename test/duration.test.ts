// Points in time mean the same everywhere (API queries and bodies, CLI flags, cursors): strict
// ISO 8601 within 1970..9999 UTC, or a duration ago that lands there.
import { parseSince, parseTimestamp } from "../src/util/duration";

describe("parseTimestamp", () => {
  it.each([
    ["2024-02-29", "2024-02-29T00:00:00.000Z"],
    ["2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000Z"],
    ["2024-02-29T23:59:59.999999+05:30", "2024-02-29T18:29:59.999Z"],
    ["2024-03-01 00:00-01:00", "2024-03-01T01:00:00.000Z"],
    ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"],
    ["9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"],
  ])("reads %s as %s", (text, iso) => {
    expect(parseTimestamp(text).toISOString()).toBe(iso);
  });

  it.each([
    ["2024-02-30", /does not exist|not a date/],
    ["2023-02-29", /not a date/],
    ["2024-13-01", /not a date/],
    ["2024-01-01T24:00:00Z", /not a date/],
    ["2024-01-01T12:60Z", /not a date/],
    ["2024-01-01T00:00:00+24:00", /not a date/],
    ["0000-01-01", /out of range/],
    ["1969-12-31T23:59:59.999Z", /out of range/],
    ["1970-01-01T00:00:00+00:01", /out of range/],
    ["9999-12-31T23:59:59-00:01", /out of range/],
    ["10000-01-01", /ISO timestamp/],
    ["+275760-09-13T00:00:00.000Z", /ISO timestamp/],
    ["-000001-01-01", /ISO timestamp/],
    ["2024-01-01\u0000", /ISO timestamp/],
    ["March 1, 2024", /ISO timestamp/],
    ["", /ISO timestamp/],
  ])("refuses %j", (text, message) => {
    expect(() => parseTimestamp(text)).toThrow(message);
  });
});

describe("parseSince", () => {
  const now = new Date("2025-06-01T12:00:00Z");

  it("reads durations ago and timestamps", () => {
    expect(parseSince("2h", now).toISOString()).toBe("2025-06-01T10:00:00.000Z");
    expect(parseSince("0.5d", now).toISOString()).toBe("2025-06-01T00:00:00.000Z");
    expect(parseSince("2025-01-31", now).toISOString()).toBe("2025-01-31T00:00:00.000Z");
  });

  it("refuses a duration that reaches before 1970", () => {
    expect(() => parseSince("9999999999999d", now)).toThrow(/before 1970/);
    expect(() => parseSince("100000w", now)).toThrow(/before 1970/);
  });
});
