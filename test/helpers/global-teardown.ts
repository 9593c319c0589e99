import postgres from "postgres";

export default async function globalTeardown(): Promise<void> {
  const serverUrl = process.env.PGW_TEST_SERVER_URL;
  const template = process.env.PGW_TEST_TEMPLATE;
  if (serverUrl && template) {
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    // Test databases are dropped by their files; the template goes last.
    const leftovers = await admin<{ datname: string }[]>`
      select datname from pg_database where datname like ${`pgw_t_${template.slice(8)}%`} or datname = ${template}`;
    for (const { datname } of leftovers) await admin.unsafe(`drop database if exists ${datname} with (force)`);
    await admin.end();
  }
  await globalThis.__PGW_STOP__?.();
}
