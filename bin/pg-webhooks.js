#!/usr/bin/env node
// Thin entry: the compiled CLI lives in dist/ (built by `npm ci` / `npm run build`).
require("../dist/cli/main.js").main(process.argv);
