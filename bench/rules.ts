// `npm run bench:rules`: the rules scenario of `npm run bench` (bench/scenarios/rules.ts) alone,
// in a scratch database next to DATABASE_URL, dropped at the end. `--smoke`: tiny sizes.
import { log, withScratchDatabase } from "./harness";
import { rules } from "./scenarios/rules";

async function main(): Promise<void> {
  const smoke = process.argv.includes("--smoke");
  const baseUrl = process.env.DATABASE_URL;
  if (!baseUrl) throw new Error("DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test)");
  await withScratchDatabase(baseUrl, smoke ? "rules smoke" : "rules", async ({ sql }) => {
    log(JSON.stringify(await rules(sql, smoke), null, 2));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
