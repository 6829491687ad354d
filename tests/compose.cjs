// Apollo's own composition (the npm package @apollo/composition) of the subgraphs given on stdin as
// [{"name": ..., "sdl": ...}]; prints {"ok": bool, "errors": [{"code", "message"}]}. Run by tests/test_composition.py.
const { composeServices } = require("@apollo/composition");
const { parse } = require("graphql");

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const services = JSON.parse(input).map((s) => ({ name: s.name, url: `http://${s.name}`, typeDefs: parse(s.sdl) }));
  const result = composeServices(services);
  const errors = (result.errors || []).map((e) => ({ code: e.extensions && e.extensions.code, message: e.message }));
  process.stdout.write(JSON.stringify({ ok: errors.length === 0, errors }));
});
