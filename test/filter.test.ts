// The filter language and event type patterns: pure functions, specified by tables.
import type { Filter, FilterBody } from "../src/dispatch/filter";
import {
  eventPatternSchema,
  filterSchema,
  formatFilterIssues,
  matches,
  typeMatches,
} from "../src/dispatch/filter";

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
      [{ path: "filter.data.x.$regex", message: "unknown operator $regex; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists" }],
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
    ["an empty operator object", { "data.x": {} }, [{ path: "filter.data.x", message: "expected at least one operator: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists" }]],
    ["a path without its root", { stage: "won" }, [{ path: "filter.stage", message: "unknown field stage; paths start with data, previous_attributes, type, tenant, id, timestamp (for example data.stage)" }]],
    ["an empty path segment", { "data..x": 1 }, [{ path: "filter.data..x", message: 'expected a field path such as data.stage or data.items.0.sku, got "data..x"' }]],
    [
      "several problems at once",
      { "data.a": { $gt: [] }, $or: [{ "data.b": { $foo: 1 } }] },
      [
        { path: "filter.data.a.$gt", message: "expected a number or string for $gt, got array" },
        { path: "filter.$or.0.data.b.$foo", message: "unknown operator $foo; expected one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists" },
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
