// `node -r ts-node/register/transpile-only bench/render.ts`: the render scenario of `npm run bench`
// (bench/scenarios/render.ts) alone; pure CPU, no database. `--smoke`: tiny sizes.
import { render } from "./scenarios/render";

render(process.argv.includes("--smoke")).then(
  (figures) => console.log(JSON.stringify(figures, null, 2)),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
