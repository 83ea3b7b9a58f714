// Generates random concurrent SyncText-like histories against the SDK 0.3.0 WASM core
// and writes cases.json (fixtures for the Java port).
// usage (from e2e/, after SdkSuiteIT installed the SDK): node fugue/gen.mjs [N=200] [seed=42] [out]
import fs from 'fs';
import {T} from './core.mjs';
import * as R from './ref.mjs';

const N = +(process.argv[2] || 200);
let seed = +(process.argv[3] || 42);
const OUT = process.argv[4] || new URL('../../src/test/resources/fugue/cases.json', import.meta.url).pathname;
const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const WORDS = ['a', 'b', 'c', 'x', 'yz', 'Hi', 'foo', ' ', 'QQ', 'k', 'lmn', '!'];
const SERVER_ID = 'server';

// SDK remote-state path: local.merge(WasmFugueText.fromJSON(state))
function mergeState(local, state) { const o = T.fromJSON(state); try { local.merge(o); } finally { o.free(); } }
function freshMerge(states) { const f = new T(SERVER_ID); for (const s of states) mergeState(f, s); const r = {json: f.toJSON(), text: f.toString()}; f.free(); return r; }
function permutations(a) { if (a.length <= 1) return [a]; const out = []; a.forEach((x, i) => { for (const p of permutations([...a.slice(0, i), ...a.slice(i + 1)])) out.push([x, ...p]); }); return out; }

function runCase(ci) {
  const nRep = 2 + ri(3);
  const ids = Array.from({length: nRep}, (_, i) => pick(['client-', 'c', 'user', 'u-']) + String.fromCharCode(97 + i) + (ri(3) ? '' : ri(10)));
  const reps = ids.map((id) => new T(id));
  const hub = new T(SERVER_ID); // relay like the sync server (state pushed/pulled)
  const offline = ids.map(() => 0);
  // common starting text sometimes
  if (rnd() < 0.6) { reps[0].insert(0, pick(['Hello', 'World', 'abcdef', 'The quick'])); const s = reps[0].toJSON(); for (let i = 1; i < nRep; i++) mergeState(reps[i], s); mergeState(hub, s); }
  const steps = 4 + ri(14); let errors = 0;
  for (let st = 0; st < steps; st++) {
    const i = ri(nRep), r = reps[i];
    const u = rnd();
    if (u < 0.45) { const p = ri(r.length() + 1); r.insert(p, pick(WORDS)); }
    else if (u < 0.7) { const len = r.length(); if (len > 0) { const p = ri(len); const l = 1 + ri(Math.min(3, len - p)); try { r.delete(p, l); } catch (e) { errors++; } } }
    else if (u < 0.8) { offline[i] = 2 + ri(5); }
    // sync round for this replica
    if (offline[i] > 0) { offline[i]--; continue; }
    const v = rnd();
    if (v < 0.35) { const j = ri(nRep); if (j !== i && !offline[j]) mergeState(reps[j], r.toJSON()); }
    else if (v < 0.6) { mergeState(hub, r.toJSON()); }
    else if (v < 0.75) { mergeState(r, hub.toJSON()); }
  }
  const states = reps.map((r) => r.toJSON());
  const replicaTexts = reps.map((r) => r.toString());
  reps.forEach((r) => r.free()); hub.free();
  const m = freshMerge(states);
  const fj = T.fromJSON(m.json); const fromJsonText = fj.toString(); fj.free();
  // order (in)dependence of the fresh merge
  const perms = permutations(states.map((_, i) => i));
  const texts = new Set(), jsons = new Set(); let example = null;
  for (const p of perms) { const r = freshMerge(p.map((k) => states[k])); texts.add(r.text); jsons.add(r.json); if (r.text !== m.text && !example) example = {order: p, text: r.text}; }
  // self-check of the reference model
  const rs = states.reduce((acc, s) => R.merge(acc, R.parse(s)), R.emptyState(SERVER_ID));
  const refOk = R.serialize(rs) === m.json && R.renderTree(rs) === m.text && R.renderKeyOrder(R.parse(m.json)) === fromJsonText;
  // what each existing replica shows after pulling the merged state (its own blocks win on key clashes)
  const replicaTextsAfterPull = states.map((s) => { const r = T.fromJSON(s); mergeState(r, m.json); const t = r.toString(); r.free(); return t; });
  return {states, merged: m.json, text: m.text, fromJsonText, replicaTexts, replicaTextsAfterPull,
    orderIndependentText: texts.size === 1, orderIndependentJson: jsons.size === 1, orderCounterexample: example, refOk, deleteErrors: errors};
}

const cases = [];
for (let c = 0; c < N; c++) cases.push(runCase(c));
fs.writeFileSync(OUT, JSON.stringify(cases));
const cnt = (f) => cases.filter(f).length;
console.log(`wrote ${cases.length} cases to ${OUT} (${fs.statSync(OUT).size} bytes)`);
console.log(`refOk ${cnt((c) => c.refOk)}/${N}; orderIndependentText ${cnt((c) => c.orderIndependentText)}; orderIndependentJson ${cnt((c) => c.orderIndependentJson)}; text!=fromJsonText ${cnt((c) => c.text !== c.fromJsonText)}; deleteErrors ${cases.reduce((a, c) => a + c.deleteErrors, 0)}`);
