// Which header values are secrets, and how they are shown: the one rule for webhook views,
// listings, attempt logs and the CLI. A value is masked when the user marked its header
// secret (secret_headers) or when the header's name looks like it carries a credential.

export const MASK = "****";

// Static headers are user-typed; names with these words carry credentials far more often than not.
const CREDENTIAL_NAME =
  /auth|token|key|secret|passw|pwd|signature|cookie|session|credential|jwt|bearer|private|csrf|xsrf|(?:^|[-_.])sig(?:$|[-_.])/i;

/** True when `name` looks like a credential, or is among `marked` (names, any case). */
export function isSecretHeader(name: string, marked: readonly string[] = []): boolean {
  if (CREDENTIAL_NAME.test(name)) return true;
  const lower = name.toLowerCase();
  return marked.some((m) => m.toLowerCase() === lower);
}

/** Keeps a recognisable prefix (`Bearer `, `v1,`, `sha256=`) so a log still says what was sent. */
export function maskValue(value: string): string {
  const m = /^(Bearer |Basic |sha256=)/i.exec(value);
  if (m) return m[1] + MASK;
  if (value.startsWith("v1,")) return value.split(" ").map(() => "v1," + MASK).join(" ");
  return MASK;
}

/** A copy of `headers` with the value of every secret header (see isSecretHeader) masked. */
export function maskHeaders(headers: Record<string, string>, marked: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = isSecretHeader(name, marked) ? maskValue(value) : value;
  return out;
}
