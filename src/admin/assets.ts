// The admin's static files: htmx from node_modules, one style sheet and one small script of our
// own. Served under /admin/assets/ with a content hash in the name (cached for a year) and
// gzipped once at start-up. No build step: the CSS and JS are kept here as text.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const CSS = String.raw`
:root{--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--panel:#f6f8fa;--accent:#0b5cad;--ok:#116329;--bad:#a40e26;--warn:#7d4e00;--focus:#0969da;color-scheme:light}
@media (prefers-color-scheme:dark){:root:not([data-theme=light]){--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--panel:#161b22;--accent:#58a6ff;--ok:#3fb950;--bad:#ff7b72;--warn:#d29922;--focus:#58a6ff;color-scheme:dark}}
:root[data-theme=dark]{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--panel:#161b22;--accent:#58a6ff;--ok:#3fb950;--bad:#ff7b72;--warn:#d29922;--focus:#58a6ff;color-scheme:dark}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--accent)}
:focus-visible{outline:2px solid var(--focus);outline-offset:2px}
header.top{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;padding:.5rem 1rem;border-bottom:1px solid var(--line);background:var(--panel)}
header.top nav ul{display:flex;gap:1rem;list-style:none;margin:0;padding:0}
header.top nav a[aria-current=page]{font-weight:700;text-decoration:none}
header.top .who{margin-left:auto;display:flex;gap:.5rem;align-items:center;color:var(--muted)}
.brand{font-weight:700;text-decoration:none;color:var(--fg)}
main{padding:1rem;max-width:1200px}
h1{font-size:1.4rem;margin:.2rem 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.85rem;color:var(--muted)}
td.num,th.num{text-align:right}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem}
pre{background:var(--panel);border:1px solid var(--line);padding:.5rem;overflow:auto;max-height:30rem;white-space:pre-wrap;word-break:break-all}
form.inline{display:inline}
label{font-weight:600}
.field{margin:.6rem 0;display:flex;flex-direction:column;gap:.2rem;max-width:40rem}
.field.row{flex-direction:row;align-items:center;gap:.5rem}
.hint{color:var(--muted);font-size:.85rem;font-weight:400}
.error{color:var(--bad);font-size:.9rem}
input,select,textarea,button{font:inherit;color:inherit}
input[type=text],input[type=url],input[type=password],input[type=number],input[type=search],select,textarea{background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:.3rem .4rem}
textarea{min-height:4rem}
input[aria-invalid=true],textarea[aria-invalid=true]{border-color:var(--bad)}
button,.button{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.3rem .7rem;cursor:pointer;text-decoration:none;display:inline-block}
button.primary{background:var(--accent);border-color:var(--accent);color:var(--bg)}
button.danger{color:var(--bad);border-color:var(--bad)}
.pill{display:inline-block;padding:0 .45rem;border-radius:1rem;border:1px solid currentColor;font-size:.8rem;white-space:nowrap}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}.muted{color:var(--muted)}
.notice{border:1px solid var(--line);border-left:4px solid var(--accent);background:var(--panel);padding:.5rem .75rem;margin:.75rem 0}
.notice.bad{border-left-color:var(--bad)}
.filters{display:flex;flex-wrap:wrap;gap:.75rem;align-items:flex-end;margin-bottom:1rem}
.filters .field{margin:0}
dl.props{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.props dt{color:var(--muted)}
dl.props dd{margin:0}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin:.75rem 0}
fieldset{border:1px solid var(--line);border-radius:4px;margin:1rem 0;max-width:44rem}
legend{font-weight:700;padding:0 .3rem}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.htmx-indicator{opacity:0}.htmx-request .htmx-indicator,.htmx-request.htmx-indicator{opacity:1}
`;

// Progressive enhancement only: every page works without it.
const JS = String.raw`(function(){
"use strict";
document.addEventListener("click",function(e){
  var b=e.target.closest&&e.target.closest("[data-copy]");
  if(!b)return;
  var t=document.getElementById(b.getAttribute("data-copy"));
  if(!t||!navigator.clipboard)return;
  navigator.clipboard.writeText(t.textContent||"").then(function(){var old=b.textContent;b.textContent="Copied";setTimeout(function(){b.textContent=old},1500)});
});
document.addEventListener("DOMContentLoaded",function(){
  var bs=document.querySelectorAll("[data-copy]");
  for(var i=0;i<bs.length;i++)bs[i].hidden=false;
});
// A control marked data-submit submits its form when changed (the Live toggle), as Apply would.
document.addEventListener("change",function(e){
  var c=e.target;
  if(c&&c.hasAttribute&&c.hasAttribute("data-submit")&&c.form)c.form.requestSubmit();
});
// Live lists poll only while the tab is visible.
document.addEventListener("htmx:beforeRequest",function(e){
  if(document.hidden&&e.detail&&e.detail.elt&&e.detail.elt.hasAttribute("data-live"))e.preventDefault();
});
})();`;

export interface Asset {
  /** The path under /admin/assets/, with the content hash in it. */
  name: string;
  type: string;
  body: Buffer;
  gzip: Buffer;
}

function asset(base: string, ext: string, type: string, body: Buffer): Asset {
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 10);
  return { name: `${base}-${hash}.${ext}`, type, body, gzip: gzipSync(body, { level: 9 }) };
}

let loaded: { css: Asset; js: Asset; htmx: Asset } | null = null;

/** The three assets, read once. */
export function assets(): { css: Asset; js: Asset; htmx: Asset } {
  loaded ??= {
    css: asset("admin", "css", "text/css; charset=utf-8", Buffer.from(CSS.trim(), "utf8")),
    js: asset("admin", "js", "text/javascript; charset=utf-8", Buffer.from(JS, "utf8")),
    htmx: asset("htmx", "js", "text/javascript; charset=utf-8", readFileSync(require.resolve("htmx.org/dist/htmx.min.js"))),
  };
  return loaded;
}
