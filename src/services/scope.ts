// Who is asking: an admin (sees every tenant) or one tenant (sees only its own objects).
export interface Scope {
  /** null for an admin key or the operator's CLI; otherwise the only tenant visible. */
  tenant: string | null;
}

export const ADMIN: Scope = { tenant: null };
