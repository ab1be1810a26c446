// Builds the browser app into dist/ (served by coursecrafter-server; never committed):
// dist/index.html (the style sheet inside it) plus content-hashed scripts in dist/assets/. hls.js
// is split into its own chunk, loaded only on the watch page and only where the browser has no HLS
// of its own.
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const dist = path.join(here, "dist");
await rm(dist, { recursive: true, force: true });
await mkdir(path.join(dist, "assets"), { recursive: true });

const result = await build({
  entryPoints: [path.join(here, "src/app.js"), path.join(here, "src/style.css")],
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  outdir: path.join(dist, "assets"),
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.entries(result.metafile.outputs);
const find = (entry) => {
  const hit = outputs.find(([, o]) => o.entryPoint && o.entryPoint.endsWith(entry));
  if (!hit) throw new Error(`no output for ${entry}`);
  return path.basename(hit[0]);
};
// The style sheet goes into the page itself (<style>; the server's CSP names its hash): a linked
// one held the page's first paint and the app's script back until a second request came in, and
// that paint then ran into the first frame's requests (docs/benchmarks.md).
const cssFile = path.join(dist, "assets", find("src/style.css"));
const css = (await readFile(cssFile, "utf8")).trim();
if (css.includes("</")) throw new Error("style.css must not contain '</'");
await rm(cssFile);
const html = (await readFile(path.join(here, "src/index.html"), "utf8"))
  .replace("__APP_JS__", find("src/app.js"))
  .replace("<style>__APP_CSS__</style>", () => `<style>${css}</style>`);
if (!html.includes(css)) throw new Error("src/index.html has no <style>__APP_CSS__</style>");
await writeFile(path.join(dist, "index.html"), html);
for (const [file, o] of outputs) {
  if (path.resolve(file) === cssFile) continue;
  console.log(`${path.relative(here, file)}  ${(o.bytes / 1024).toFixed(1)} KiB`);
}
