// The filter language and event type patterns: pure functions, specified by tables.
import type { Filter, FilterBody } from "../src/model/filter";
import { parseExact } from "../src/delivery/event-json";
import {
  eventPatternSchema,
  filterSchema,
  formatFilterIssues,
  matches,
  typeMatches,
} from "../src/model/filter";

const body: FilterBody = {
  id: "evt_1",
  type: "deals.updated",
  timestamp: "2024-05-01T12:00:00.000Z",
  tenant: "acme",
  data: {
    stage: "won",
    value: 12000,
    name: "Big deal",
    closed: true,
    owner: null,
    items: [{ sku: "A-1", qty: 2 }, { sku: "B-2", qty: 1 }],
    meta: { source: { channel: "web" } },
  },
  previous_attributes: { stage: "negotiation", value: 9000 },
};

const created: FilterBody = { id: "evt_2", type: "deals.created", data: { stage: "lead", value: 50 }, tenant: null };

describe("matches", () => {
  it.each<[string, Filter | null | undefined, FilterBody, boolean]>([
    // no filter
    ["matches everything without a filter (null)", null, body, true],
    ["matches everything without a filter (undefined)", undefined, body, true],
    ["matches everything with an empty filter", {}, body, true],
    // examples from the README
    ["stage changed to won", { "data.stage": "won", "previous_attributes.stage": { $exists: true } }, body, true],
    ["stage won but not changed", { "data.stage": "won", "previous_attributes.stage": { $exists: true } }, { ...body, previous_attributes: { value: 1 } }, false],
    ["value over 10000", { "data.value": { $gt: 10000 } }, body, true],
    ["value under 10000", { "data.value": { $gt: 10000 } }, created, false],
    // literals ($eq shorthand)
    ["a string literal", { "data.stage": "won" }, body, true],
    ["a different string literal", { "data.stage": "lost" }, body, false],
    ["a number literal", { "data.value": 12000 }, body, true],
    ["a boolean literal", { "data.closed": true }, body, true],
    ["a null literal against null", { "data.owner": null }, body, true],
    ["a null literal against a missing path", { "data.nope": null }, body, false],
    ["a literal never equals the string of a number", { "data.value": "12000" }, body, false],
    ["type", { type: "deals.updated" }, body, true],
    ["tenant", { tenant: "acme" }, body, true],
    ["tenant against a null tenant", { tenant: "acme" }, created, false],
    ["several keys all hold (implicit $and)", { "data.stage": "won", "data.value": 12000 }, body, true],
    ["several keys, one fails", { "data.stage": "won", "data.value": 1 }, body, false],
    // $eq / $ne
    ["$eq equal", { "data.stage": { $eq: "won" } }, body, true],
    ["$eq unequal", { "data.stage": { $eq: "lost" } }, body, false],
    ["$eq null against null", { "data.owner": { $eq: null } }, body, true],
    ["$eq against an object value", { "data.meta": { $eq: "x" } }, body, false],
    ["$eq on a missing path", { "data.nope": { $eq: "x" } }, body, false],
    ["$ne unequal", { "data.stage": { $ne: "lost" } }, body, true],
    ["$ne equal", { "data.stage": { $ne: "won" } }, body, false],
    ["$ne null against null", { "data.owner": { $ne: null } }, body, false],
    ["$ne null against a value", { "data.stage": { $ne: null } }, body, true],
    ["$ne on a missing path", { "data.nope": { $ne: "x" } }, body, true],
    ["$ne across types", { "data.value": { $ne: "12000" } }, body, true],
    // ordering
    ["$gt true", { "data.value": { $gt: 11999 } }, body, true],
    ["$gt at the boundary", { "data.value": { $gt: 12000 } }, body, false],
    ["$gte at the boundary", { "data.value": { $gte: 12000 } }, body, true],
    ["$lt true", { "data.value": { $lt: 12001 } }, body, true],
    ["$lt at the boundary", { "data.value": { $lt: 12000 } }, body, false],
    ["$lte at the boundary", { "data.value": { $lte: 12000 } }, body, true],
    ["a range", { "data.value": { $gte: 10000, $lt: 20000 } }, body, true],
    ["a range missed", { "data.value": { $gte: 10000, $lt: 11000 } }, body, false],
    ["$gt on strings", { "data.stage": { $gt: "lost" } }, body, true],
    ["$lt on ISO timestamps", { timestamp: { $lt: "2024-06-01" } }, body, true],
    ["$gt with a string against a number", { "data.value": { $gt: "1" } }, body, false],
    ["$lt with a number against a string", { "data.stage": { $lt: 5 } }, body, false],
    ["$gte with a number against null", { "data.owner": { $gte: 0 } }, body, false],
    ["$lte with a number against a boolean", { "data.closed": { $lte: 1 } }, body, false],
    ["$gt on a missing path", { "data.nope": { $gt: 0 } }, body, false],
    ["$lt on a missing path", { "data.nope": { $lt: 0 } }, body, false],
    // $in / $nin
    ["$in contains", { "data.stage": { $in: ["won", "lost"] } }, body, true],
    ["$in does not contain", { "data.stage": { $in: ["lead", "lost"] } }, body, false],
    ["$in with null against null", { "data.owner": { $in: [null, "bob"] } }, body, true],
    ["$in is type-strict", { "data.value": { $in: ["12000"] } }, body, false],
    ["$in on a missing path", { "data.nope": { $in: [null] } }, body, false],
    ["$in with an empty list", { "data.stage": { $in: [] } }, body, false],
    ["$nin does not contain", { "data.stage": { $nin: ["lead"] } }, body, true],
    ["$nin contains", { "data.stage": { $nin: ["won"] } }, body, false],
    ["$nin on a missing path", { "data.nope": { $nin: ["x"] } }, body, true],
    // $exists
    ["$exists true on a value", { "data.stage": { $exists: true } }, body, true],
    ["$exists true on null (null is present)", { "data.owner": { $exists: true } }, body, true],
    ["$exists false on null", { "data.owner": { $exists: false } }, body, false],
    ["$exists true on a missing path", { "data.nope": { $exists: true } }, body, false],
    ["$exists false on a missing path", { "data.nope": { $exists: false } }, body, true],
    ["$exists on previous_attributes of a create", { "previous_attributes.stage": { $exists: true } }, created, false],
    ["$exists false on previous_attributes of a create", { previous_attributes: { $exists: false } }, created, true],
    ["$exists on a missing tenant", { tenant: { $exists: true } }, { type: "x", data: {} }, false],
    ["$exists on a null tenant", { tenant: { $exists: true } }, created, true],
    // paths
    ["a nested object path", { "data.meta.source.channel": "web" }, body, true],
    ["a path through a scalar", { "data.stage.length": { $exists: true } }, body, false],
    ["a path through null", { "data.owner.name": { $exists: true } }, body, false],
    ["an array index path", { "data.items.0.sku": "A-1" }, body, true],
    ["the second array element", { "data.items.1.qty": { $lt: 2 } }, body, true],
    ["an index past the end", { "data.items.2.sku": { $exists: true } }, body, false],
    ["a named key on an array", { "data.items.length": { $exists: true } }, body, false],
    ["a prototype key is not a field", { "data.constructor": { $exists: true } }, body, false],
    ["a numeric object key", { "data.0": "zero" }, { type: "x", data: { "0": "zero" } }, true],
    // logic
    ["$and all hold", { $and: [{ "data.stage": "won" }, { "data.value": { $gt: 100 } }] }, body, true],
    ["$and one fails", { $and: [{ "data.stage": "won" }, { "data.value": { $gt: 100000 } }] }, body, false],
    ["$or one holds", { $or: [{ "data.stage": "lost" }, { "data.value": { $gt: 100 } }] }, body, true],
    ["$or none hold", { $or: [{ "data.stage": "lost" }, { "data.value": { $lt: 100 } }] }, body, false],
    ["$not of a failing filter", { $not: { "data.stage": "lost" } }, body, true],
    ["$not of a holding filter", { $not: { "data.stage": "won" } }, body, false],
    ["$not of a missing path", { $not: { "data.nope": "x" } }, body, true],
    [
      "$or nested in $and with a field",
      { type: "deals.updated", $and: [{ $or: [{ "data.stage": "won" }, { "data.stage": "lost" }] }, { $not: { "data.value": { $lt: 1000 } } }] },
      body,
      true,
    ],
    ["double negation", { $not: { $not: { "data.stage": "won" } } }, body, true],
    ["$or with a failing sibling field", { $or: [{ "data.stage": "won" }], "data.value": 1 }, body, false],
  ])("%s", (_name, filter, input, expected) => {
    expect(matches(filter, input)).toBe(expected);
  });
});

describe("filterSchema", () => {
  it.each<[string, unknown]>([
    ["the empty filter", {}],
    ["stage changed to won", { "data.stage": "won", "previous_attributes.stage": { $exists: true } }],
    ["value over 10000", { "data.value": { $gt: 10000 } }],
    ["every operator", { "data.a": { $eq: null, $ne: 1, $gt: "a", $gte: 1, $lt: 2, $lte: "z", $in: [1, "a", true, null], $nin: [], $exists: true } }],
    ["nested logic", { $and: [{ $or: [{ type: "a" }, { tenant: "t" }] }, { $not: { "data.items.0.sku": "x" } }] }],
    ["top-level roots", { id: "evt_1", timestamp: { $gt: "2024" }, type: "a", tenant: null, data: { $exists: true } }],
    ["ten levels of nesting", nest(9)],
    ["100 conditions", wide(100)],
  ])("accepts %s", (_name, input) => {
    const result = filterSchema.safeParse(input);
    expect(result.error?.issues ?? []).toEqual([]);
    expect(result.data).toEqual(input);
  });

  it.each<[string, unknown, { path: string; message: string }[]]>([
    ["a string", "won", [{ path: "filter", message: 'expected a filter object such as {"data.stage": "won"}, got string' }]],
    ["an array", [], [{ path: "filter", message: 'expected a filter object such as {"data.stage": "won"}, got array' }]],
    ["null", null, [{ path: "filter", message: 'expected a filter object such as {"data.stage": "won"}, got null' }]],
    ["an object for $gt", { "data.value": { $gt: {} } }, [{ path: "filter.data.value.$gt", message: "expected a number or string for $gt, got object" }]],
    ["a boolean for $lte", { "data.value": { $lte: true } }, [{ path: "filter.data.value.$lte", message: "expected a number or string for $lte, got boolean" }]],
    ["null for $gte", { "data.value": { $gte: null } }, [{ path: "filter.data.value.$gte", message: "expected a number or string for $gte, got null" }]],
    ["an object for $or", { $or: {} }, [{ path: "filter.$or", message: "expected an array of filters, got object" }]],
    ["an empty $and", { $and: [] }, [{ path: "filter.$and", message: "expected an array of filters, got an empty array" }]],
    ["a string inside $and", { $and: [{ type: "a" }, "b"] }, [{ path: "filter.$and.1", message: 'expected a filter object such as {"data.stage": "won"}, got string' }]],
    ["an array for $not", { $not: [] }, [{ path: "filter.$not", message: 'expected a filter object such as {"data.stage": "won"}, got array' }]],
    [
      "an unknown operator",
      { "data.x": { $regex: "a" } },
      [{ path: "filter.data.x.$regex", message: "unknown operator $regex; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $all, $exists" }],
    ],
    [
      "an unknown logical operator",
      { $nor: [] },
      [{ path: "filter.$nor", message: "unknown logical operator $nor; expected one of $and, $or, $not or a field path such as data.stage" }],
    ],
    ["an object for $eq", { "data.x": { $eq: { a: 1 } } }, [{ path: "filter.data.x.$eq", message: "expected a string, number, boolean or null for $eq, got object" }]],
    ["an array for $ne", { "data.x": { $ne: [1] } }, [{ path: "filter.data.x.$ne", message: "expected a string, number, boolean or null for $ne, got array" }]],
    ["a scalar for $in", { "data.x": { $in: "a" } }, [{ path: "filter.data.x.$in", message: "expected an array of strings, numbers, booleans or nulls for $in, got string" }]],
    ["objects inside $nin", { "data.x": { $nin: [{}] } }, [{ path: "filter.data.x.$nin", message: "expected an array of strings, numbers, booleans or nulls for $nin, got an array holding other values" }]],
    ["a string for $exists", { "data.x": { $exists: "yes" } }, [{ path: "filter.data.x.$exists", message: "expected true or false for $exists, got string" }]],
    ["an array literal", { "data.x": [1, 2] }, [{ path: "filter.data.x", message: 'expected a string, number, boolean, null or an object of operators such as {"$gt": 10}, got array' }]],
    ["an empty operator object", { "data.x": {} }, [{ path: "filter.data.x", message: "expected at least one operator: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $all, $exists" }]],
    ["a path without its root", { stage: "won" }, [{ path: "filter.stage", message: "unknown field stage; paths start with data, previous_attributes, type, tenant, id, timestamp (for example data.stage)" }]],
    ["an empty path segment", { "data..x": 1 }, [{ path: "filter.data..x", message: 'expected a field path such as data.stage or data.items.0.sku, got "data..x"' }]],
    [
      "several problems at once",
      { "data.a": { $gt: [] }, $or: [{ "data.b": { $foo: 1 } }] },
      [
        { path: "filter.data.a.$gt", message: "expected a number or string for $gt, got array" },
        { path: "filter.$or.0.data.b.$foo", message: "unknown operator $foo; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $contains, $all, $exists" },
      ],
    ],
    ["eleven levels of nesting", nest(10), [{ path: `filter${".$not".repeat(10)}`, message: "filter is nested too deeply; at most 10 levels of $and, $or and $not" }]],
    ["101 conditions", wide(101), [{ path: "filter", message: "filter is too large; at most 100 conditions in all, counting $and, $or and $not" }]],
    ["101 conditions spread over $or", { $or: [wide(60), wide(60)] }, [{ path: "filter", message: "filter is too large; at most 100 conditions in all, counting $and, $or and $not" }]],
  ])("rejects %s", (_name, input, expected) => {
    const result = filterSchema.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error && formatFilterIssues(result.error)).toEqual(expected);
  });

  it("gives zod paths with the field path as one segment", () => {
    const result = filterSchema.safeParse({ "data.value": { $gt: {} } });
    expect(result.error?.issues.map((i) => i.path)).toEqual([["data.value", "$gt"]]);
  });

  it.each<[string, string, string]>([
    ["uses the prefix it is given", "webhook.filter", "webhook.filter.$or"],
    ["drops an empty prefix", "", "$or"],
  ])("formatFilterIssues %s", (_name, prefix, path) => {
    const result = filterSchema.safeParse({ $or: 1 });
    expect(result.error && formatFilterIssues(result.error, prefix).map((i) => i.path)).toEqual([path]);
  });
});

// Data as the dispatcher parses it from Postgres's jsonb text: numbers a double would change stay exact.
const exact: FilterBody = {
  type: "clients.updated",
  data: parseExact(
    '{"id": 9007199254740993, "small": 9007199254740991, "amount": 12345678901234567890.12, "huge": 123456789012345678901234567890, ' +
      '"ratio": 0.1234567890123456789, "tags": ["vip", "eu", 9007199254740993], "ints": [1, 2, 3], "name": "Ada", "code": "9007199254740993"}',
  ).value,
};

describe("matches with exact numbers", () => {
  it.each<[string, Filter, boolean]>([
    // a big number is given as a string of its digits and compares by exact value
    ["2^53 + 1 equals its digits", { "data.id": "9007199254740993" }, true],
    ["2^53 + 1 does not equal 2^53", { "data.id": "9007199254740992" }, false],
    ["$eq with the digits", { "data.id": { $eq: "9007199254740993" } }, true],
    ["$ne with the neighbour's digits", { "data.id": { $ne: "9007199254740992" } }, true],
    ["$ne with its own digits", { "data.id": { $ne: "9007199254740993" } }, false],
    ["$gt by one unit in the last place", { "data.id": { $gt: "9007199254740992" } }, true],
    ["$gte itself", { "data.id": { $gte: "9007199254740993" } }, true],
    ["$lt itself", { "data.id": { $lt: "9007199254740993" } }, false],
    ["$lt the next integer", { "data.id": { $lt: "9007199254740994" } }, true],
    ["$gt a small number", { "data.id": { $gt: 5 } }, true],
    ["$in with its digits", { "data.id": { $in: ["1", "9007199254740993"] } }, true],
    ["$in with only its neighbour", { "data.id": { $in: ["9007199254740992", "9007199254740994"] } }, false],
    ["$nin with its neighbour", { "data.id": { $nin: ["9007199254740992"] } }, true],
    ["numeric(38,2) exactly", { "data.amount": "12345678901234567890.12" }, true],
    ["numeric(38,2) with a trailing zero", { "data.amount": "12345678901234567890.120" }, true],
    ["numeric(38,2) one cent less", { "data.amount": "12345678901234567890.11" }, false],
    ["numeric(38,2) above the cent below", { "data.amount": { $gt: "12345678901234567890.11" } }, true],
    ["numeric(38,2) below the cent above", { "data.amount": { $lt: "12345678901234567890.13" } }, true],
    ["numeric(38,2) against what a double would make of it", { "data.amount": { $lte: "12345678901234567000" } }, false],
    ["30 digits", { "data.huge": "123456789012345678901234567890" }, true],
    ["30 digits against their double", { "data.huge": { $eq: "123456789012345680000000000000" } }, false],
    ["a long fraction", { "data.ratio": { $gt: "0.1234567890123456788" } }, true],
    ["a long fraction against a short one", { "data.ratio": { $lt: 0.2 } }, true],
    ["a safe number against a big operand", { "data.small": { $lt: "9007199254740993" } }, true],
    ["a safe number against a big operand, reversed", { "data.small": { $gt: "9007199254740993" } }, false],
    ["a safe number in a list of big ones", { "data.small": { $in: ["9007199254740993"] } }, false],
    // strings stay strings
    ["a string of digits equals the same string", { "data.code": "9007199254740993" }, true],
    ["a short string never equals a number", { "data.small": "9007199254740991" }, false],
    ["a string is never greater than a number", { "data.name": { $gt: 5 } }, false],
  ])("%s", (_name, filter, expected) => {
    expect(matches(filter, exact)).toBe(expected);
  });
});

describe("matches arrays", () => {
  const tags: FilterBody = { type: "clients.created", data: { tags: ["vip", "eu"], ints: [1, 2, 3], empty: [], name: "vip", none: null } };
  it.each<[string, Filter, FilterBody, boolean]>([
    ["$contains a member", { "data.tags": { $contains: "vip" } }, tags, true],
    ["$contains a non-member", { "data.tags": { $contains: "us" } }, tags, false],
    ["$contains is type-strict", { "data.ints": { $contains: "1" } }, tags, false],
    ["$contains a number", { "data.ints": { $contains: 2 } }, tags, true],
    ["$contains on an empty array", { "data.empty": { $contains: "vip" } }, tags, false],
    ["$contains on a string does not match", { "data.name": { $contains: "vip" } }, tags, false],
    ["$contains on null does not match", { "data.none": { $contains: null } }, tags, false],
    ["$contains on a missing path", { "data.nope": { $contains: "vip" } }, tags, false],
    ["$not $contains on a string", { $not: { "data.name": { $contains: "vip" } } }, tags, true],
    ["$all members", { "data.tags": { $all: ["eu", "vip"] } }, tags, true],
    ["$all with one missing", { "data.tags": { $all: ["vip", "us"] } }, tags, false],
    ["$all with a repeat", { "data.tags": { $all: ["vip", "vip"] } }, tags, true],
    ["$all on a string does not match", { "data.name": { $all: ["vip"] } }, tags, false],
    ["$in on an array compares the array itself: no match", { "data.tags": { $in: ["vip"] } }, tags, false],
    ["$eq on an array: no match", { "data.tags": { $eq: "vip" } }, tags, false],
    ["$gt on an array: no match", { "data.ints": { $gt: 0 } }, tags, false],
    ["$contains a big number given as digits", { "data.tags": { $contains: "9007199254740993" } }, exact, true],
    ["$contains the neighbour of a big number", { "data.tags": { $contains: "9007199254740992" } }, exact, false],
    ["$all with a big number", { "data.tags": { $all: ["vip", "9007199254740993"] } }, exact, true],
    ["$contains with a NUL byte", { "data.tags": { $contains: "vip\u0000" } }, tags, false],
  ])("%s", (_name, filter, input, expected) => {
    expect(matches(filter, input)).toBe(expected);
  });
});

describe("filterSchema for exact numbers and arrays", () => {
  const big = 'is beyond 2^53 or has more than 15 significant digits, so it may already have been rounded when read; write it as a string of its exact digits, such as "9007199254740993"';
  it.each<[string, unknown]>([
    ["the largest safe integer", { "data.id": 9007199254740991 }],
    ["its negative", { "data.id": { $gt: -9007199254740991 } }],
    ["a fraction of 15 digits", { "data.x": { $lt: 0.123456789012345 } }],
    ["a big number as digits", { "data.id": { $in: ["9007199254740993"] } }],
    ["$contains and $all", { "data.tags": { $contains: "vip", $all: ["vip", 1, true, null] } }],
  ])("accepts %s", (_name, input) => {
    expect(filterSchema.safeParse(input).error?.issues ?? []).toEqual([]);
  });

  it.each<[string, unknown, { path: string; message: string }[]]>([
    // JSON.parse read 9007199254740993 as 9007199254740992 before validation saw it
    ["2^53 + 1 as a number", JSON.parse('{"data.id": 9007199254740993}'), [{ path: "filter.data.id", message: `9007199254740992 ${big}` }]],
    ["2^53 for $eq", { "data.id": { $eq: 2 ** 53 } }, [{ path: "filter.data.id.$eq", message: `9007199254740992 ${big}` }]],
    ["-2^53 for $lt", { "data.id": { $lt: -(2 ** 53) } }, [{ path: "filter.data.id.$lt", message: `-9007199254740992 ${big}` }]],
    ["1e300 for $gt", { "data.x": { $gt: 1e300 } }, [{ path: "filter.data.x.$gt", message: `1e+300 ${big}` }]],
    ["a long fraction in $in", JSON.parse('{"data.x": {"$in": [1, 0.1234567890123456789]}}'), [{ path: "filter.data.x.$in", message: `0.12345678901234568 ${big}` }]],
    ["a big number for $contains", { "data.tags": { $contains: 2 ** 60 } }, [{ path: "filter.data.tags.$contains", message: `1152921504606847000 ${big}` }]],
    ["an array for $contains", { "data.tags": { $contains: ["vip"] } }, [{ path: "filter.data.tags.$contains", message: "expected one string, number, boolean or null for $contains, got array; for several values use $all" }]],
    ["an object for $contains", { "data.tags": { $contains: {} } }, [{ path: "filter.data.tags.$contains", message: "expected one string, number, boolean or null for $contains, got object" }]],
    ["a scalar for $all", { "data.tags": { $all: "vip" } }, [{ path: "filter.data.tags.$all", message: "expected a non-empty array of strings, numbers, booleans or nulls for $all, got string" }]],
    ["an empty $all", { "data.tags": { $all: [] } }, [{ path: "filter.data.tags.$all", message: "expected a non-empty array of strings, numbers, booleans or nulls for $all, got an empty array" }]],
    ["nested arrays in $all", { "data.tags": { $all: [["vip"]] } }, [{ path: "filter.data.tags.$all", message: "expected a non-empty array of strings, numbers, booleans or nulls for $all, got an array holding other values" }]],
    ["$contains on type", { type: { $contains: "x" } }, [{ path: "filter.type.$contains", message: "type is a string, not an array; $contains applies to arrays (use $eq or $in)" }]],
    ["$all on tenant", { tenant: { $all: ["x"] } }, [{ path: "filter.tenant.$all", message: "tenant is a string, not an array; $all applies to arrays (use $eq or $in)" }]],
    ["$gt with a number on timestamp", { timestamp: { $gt: 1700000000 } }, [{ path: "filter.timestamp.$gt", message: "timestamp is a string; $gt with a number never holds on it (compare with a string)" }]],
  ])("rejects %s", (_name, input, expected) => {
    const result = filterSchema.safeParse(input);
    expect(result.success).toBe(false);
    expect(result.error && formatFilterIssues(result.error)).toEqual(expected);
  });
});

describe("typeMatches", () => {
  it.each<[string[], string, boolean]>([
    [["clients.created"], "clients.created", true],
    [["clients.created"], "clients.updated", false],
    [["clients.created"], "clients.created.extra", false],
    [["clients.*"], "clients.created", true],
    [["clients.*"], "clients.x.y", true],
    [["clients.*"], "clientsx.created", false],
    [["clients.*"], "clients", false],
    [["clients.*"], "clients.", false],
    [["clients.*"], "other.clients.created", false],
    [["crm.clients.*"], "crm.clients.deleted", true],
    [["crm.clients.*"], "crm.deals.deleted", false],
    [["*"], "anything.at.all", true],
    [["*"], "invoice", true],
    [["deals.created", "clients.*"], "clients.deleted", true],
    [["deals.created", "clients.*"], "deals.updated", false],
    [[], "clients.created", false],
  ])("%j matches %s: %p", (patterns, type, expected) => {
    expect(typeMatches(patterns, type)).toBe(expected);
  });
});

describe("eventPatternSchema", () => {
  it.each(["clients.created", "clients.*", "*", "invoice.paid", "crm.clients.created", "a_b-c.D9", "crm.clients.*", "single"])(
    "accepts %s",
    (pattern) => {
      expect(eventPatternSchema.safeParse(pattern).success).toBe(true);
    },
  );

  it.each<unknown>(["", "clients.", ".clients", "clients..created", "clients.*.created", "*.created", "clients*", "**", "clients.**", "a b", "clients/created", 5, null])(
    "rejects %j",
    (pattern) => {
      const result = eventPatternSchema.safeParse(pattern);
      expect(result.error?.issues.map((i) => i.message)).toEqual([
        "expected an event type such as clients.created, a pattern such as clients.* or *",
      ]);
    },
  );
});

/** A filter nested `levels` deep in $not (the top object is level 1). */
function nest(levels: number): Filter {
  let f: Filter = { "data.stage": "won" };
  for (let i = 0; i < levels; i++) f = { $not: f };
  return f;
}

/** A flat filter with `n` field conditions. */
function wide(n: number): Filter {
  const f: Filter = {};
  for (let i = 0; i < n; i++) f[`data.f${i}`] = i;
  return f;
}
