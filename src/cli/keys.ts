// `pg-webhooks keys create|list|revoke`: API keys for the HTTP API (only hashes are stored).
import type { Command } from "commander";
import type { ApiKeyView } from "../services/keys";
import type { Cli } from "./context";
import { common, uuid, type CommonOptions } from "./options";
import type { Column } from "./output";


const service = () => import("../services/keys.js"); // zod: loaded on use

const keyColumns: Column<ApiKeyView>[] = [
  { header: "id", value: (k) => k.id },
  { header: "name", value: (k) => k.name, max: 30 },
  { header: "tenant", value: (k) => k.tenant ?? "(admin)" },
  { header: "prefix", value: (k) => k.key_prefix },
  { header: "created", value: (k) => k.created_at },
  { header: "last used", value: (k) => k.last_used_at },
  { header: "revoked", value: (k) => k.revoked_at },
];

export function registerKeys(program: Command, cli: Cli): void {
  const keys = program.command("keys").description("manage API keys for the HTTP API");
  keys.addHelpText("after", "\nExample:\n  $ pg-webhooks keys create --tenant acme --name 'acme integration'\n");

  common(
    keys
      .command("create")
      .description("create an API key; the key is printed once and only its hash is kept")
      .option("--tenant <tenant>", "limit the key to one tenant (default: an admin key that sees every tenant)")
      .option("--name <name>", "a label to recognise the key by"),
    "pg-webhooks keys create --tenant acme --name 'acme integration'",
  ).action((opts: CommonOptions & { tenant?: string; name?: string }) =>
    cli.run(opts, async ({ conn, out }) => {
      const { createKey } = await service();
      const k = await createKey(conn, { tenant: opts.tenant ?? null, name: opts.name ?? null });
      out.result(k, () => {
        out.say(k.key);
        out.notice(
          `Created ${k.tenant === null ? "an admin key" : `a key for tenant ${k.tenant}`} (id ${k.id}). ` +
            "Store it now: it is not shown again. Send it as: Authorization: Bearer <key>",
        );
      });
    }),
  );

  common(keys.command("list").description("list API keys (never the keys themselves)"), "pg-webhooks keys list").action(
    (opts: CommonOptions) =>
      cli.run(opts, async ({ conn, out }) => {
        const { listKeys } = await service();
        out.list(await listKeys(conn), keyColumns, { empty: "No API keys. Create one with: pg-webhooks keys create" });
      }),
  );

  common(
    keys.command("revoke").description("revoke an API key at once").argument("<id>", "key id (from keys list)", uuid),
    "pg-webhooks keys revoke 3f2b8c1e-4b1a-4d2e-9c3f-0a1b2c3d4e5f",
  ).action((id: string, opts: CommonOptions) =>
    cli.run(opts, async ({ conn, out }) => {
      const { revokeKey } = await service();
      const r = await revokeKey(conn, id);
      out.result(r, () => out.say(`Revoked key ${id}.`));
    }),
  );
}
