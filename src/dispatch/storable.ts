// What an attempt row can hold. Postgres text cannot hold NUL and jsonb cannot hold \u0000 or
// a lone surrogate, while a receiver may answer with anything; so every text that reaches an
// attempt row passes through here. Each such character becomes U+FFFD and the row's note says
// which part was changed; a receiver's answer can never make recording fail.
import { isIP } from "node:net";

export const REPLACEMENT_CHAR = "\uFFFD";

// NUL, a high surrogate not followed by a low one, a low surrogate not preceded by a high one.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

// Any NUL or surrogate at all: the quick test that lets ordinary text through untouched.
const SUSPECT = /[\u0000\uD800-\uDFFF]/;

/** `s` with NUL and lone surrogates replaced by U+FFFD; `replaced` counts them. */
export function storableText(s: string): { text: string; replaced: number } {
  if (!SUSPECT.test(s)) return { text: s, replaced: 0 };
  let replaced = 0;
  const text = s.replace(UNSTORABLE, () => {
    replaced++;
    return REPLACEMENT_CHAR;
  });
  return { text, replaced };
}

/** Collects the notes of one row while its parts are made storable. */
export class StorableRow {
  readonly notes: string[];

  constructor(notes: readonly string[] = []) {
    this.notes = [...notes];
  }

  text(what: string, s: string): string;
  text(what: string, s: string | null): string | null;
  text(what: string, s: string | null): string | null {
    if (s === null) return null;
    const { text, replaced } = storableText(s);
    if (replaced > 0) this.notes.push(`${what}: ${replaced} NUL or unpaired surrogate character(s) replaced with U+FFFD`);
    return text;
  }

  /** Header names and values made storable, as JSON text for a jsonb column. */
  headers(what: string, h: Record<string, string> | null): string | null {
    if (h === null) return null;
    let suspect = false;
    for (const name in h) if (SUSPECT.test(name) || SUSPECT.test(h[name] ?? "")) suspect = true;
    if (!suspect) return JSON.stringify(h);
    let replaced = 0;
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(h)) {
      const n = storableText(name);
      const v = storableText(value);
      replaced += n.replaced + v.replaced;
      out[n.text] = v.text;
    }
    if (replaced > 0) this.notes.push(`${what}: ${replaced} NUL or unpaired surrogate character(s) replaced with U+FFFD`);
    return JSON.stringify(out);
  }

  /** An IP address as an inet column takes it (no IPv6 zone), or null. */
  address(a: string | null): string | null {
    if (a === null) return null;
    const ip = a.replace(/%.*$/, "");
    return isIP(ip) === 0 ? null : ip;
  }

  note(): string | null {
    return this.notes.length === 0 ? null : storableText(this.notes.join("; ")).text;
  }
}
