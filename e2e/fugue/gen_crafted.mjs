// Hand-crafted-style random states (non-ASCII / multi-codepoint graphemes, overlapping
// blocks, origins inside blocks or naming missing clocks) -> crafted.json.
// Local insert/delete cannot be used for these: the 0.3.0 rope mixes byte and char
// indices and panics/garbles on non-ASCII, so states are built directly as JSON.
// usage: node gen_crafted.mjs [N=60] [seed=7]
import fs from 'fs';
import {T} from './core.mjs';
import * as R from './ref.mjs';
const N = +(process.argv[2] || 60);
let seed = +(process.argv[3] || 7);
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const ri = (n) => Math.floor(rnd() * n), pick = (a) => a[ri(a.length)];
const clients = ['a', 'b', 'B', 'ab', 'é', 'z'];
const atoms = ['x', 'y', 'Q', ' ', 'é', 'e\u0301', '👍', '👨‍👩‍👧', '🇫🇷', '\r\n', 'k', '\n', '"'];
function craft() {
  const blocks = [], used = new Set(), nb = 1 + ri(8);
  for (let i = 0; i < nb; i++) {
    const c = pick(clients), k = 1 + ri(16); if (used.has(c + '\0' + k)) continue; used.add(c + '\0' + k);
    let t = ''; for (let j = 1 + ri(4); j > 0; j--) t += pick(atoms);
    const first = k - R.glen(t) + 1;
    const o = () => (rnd() < 0.3 || first <= 1) ? null : {client_id: pick(clients.slice(0, 3)), clock: 1 + ri(first - 1), offset: 0};
    const id = {client_id: c, clock: k, offset: 0};
    blocks.push([id, {id, text: t, left_origin: o(), right_origin: o(), deleted: rnd() < 0.25}]);
  }
  blocks.sort((x, y) => R.cmpId(x[0], y[0]));
  return JSON.stringify({blocks, clock: {value: Math.max(0, ...blocks.map((b) => b[0].clock))}, client_id: pick(clients)});
}
const out = [];
for (let i = 0; i < N; i++) {
  const states = Array.from({length: 1 + ri(3)}, craft);
  const f = new T('server'); for (const s of states) { const o = T.fromJSON(s); f.merge(o); o.free(); }
  const merged = f.toJSON(), text = f.toString(); f.free();
  const g = T.fromJSON(merged), fromJsonText = g.toString(); g.free();
  const rs = states.reduce((a, s) => R.merge(a, R.parse(s)), R.emptyState('server'));
  out.push({states, merged, text, fromJsonText, refOk: R.serialize(rs) === merged && R.renderTree(rs) === text && R.renderKeyOrder(R.parse(merged)) === fromJsonText});
}
const p = new URL('../../src/test/resources/fugue/crafted.json', import.meta.url).pathname;
fs.writeFileSync(p, JSON.stringify(out));
console.log(`wrote ${out.length} crafted cases (${fs.statSync(p).size} bytes); refOk ${out.filter((c) => c.refOk).length}`);
