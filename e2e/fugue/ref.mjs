// Reference re-implementation (spec for the Java port) of the SDK 0.3.0 WASM
// FugueText merge + render, operating purely on toJSON() state strings.
const seg = new Intl.Segmenter(undefined, {granularity: 'grapheme'});
export const glen = (s) => { let n = 0; for (const _ of seg.segment(s)) n++; return n; };
const enc = new TextEncoder();
function cmpBytes(a, b) { // Rust String Ord = UTF-8 byte order
  if (a === b) return 0; const x = enc.encode(a), y = enc.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}
export function cmpId(a, b) {
  if (a.clock !== b.clock) return a.clock < b.clock ? -1 : 1;
  const c = cmpBytes(a.client_id, b.client_id); if (c) return c < 0 ? -1 : 1;
  return a.offset === b.offset ? 0 : (a.offset < b.offset ? -1 : 1);
}
const keyStr = (k) => `${k.clock}\u0000${k.client_id}\u0000${k.offset}`;

export function parse(json) {
  const j = JSON.parse(json);
  const m = new Map(); // duplicate keys: last one wins
  for (const [k, b] of j.blocks) m.set(keyStr(k), {key: k, b: {id: b.id, text: b.text ?? '', left_origin: b.left_origin ?? null, right_origin: b.right_origin ?? null, deleted: !!b.deleted}});
  const blocks = [...m.values()].sort((x, y) => cmpId(x.key, y.key));
  return {blocks, clock: j.clock.value, client_id: j.client_id};
}
export function emptyState(client_id) { return {blocks: [], clock: 0, client_id}; }
// local.merge(remote) : mutates and returns local
export function merge(local, remote) {
  const idx = new Map(local.blocks.map((e) => [keyStr(e.key), e]));
  let maxc = 0;
  for (const e of remote.blocks) {
    const have = idx.get(keyStr(e.key));
    if (have) { if (e.b.deleted) have.b.deleted = true; }
    else { const c = {key: e.key, b: structuredClone(e.b)}; idx.set(keyStr(e.key), c); local.blocks.push(c); }
    if (e.b.id.clock > maxc) maxc = e.b.id.clock;
  }
  local.blocks.sort((x, y) => cmpId(x.key, y.key));
  local.clock = Math.max(local.clock, maxc);
  return local;
}
const idJ = (i) => i === null ? 'null' : `{"client_id":${JSON.stringify(i.client_id)},"clock":${i.clock},"offset":${i.offset}}`;
export function serialize(st) { // byte-identical to WASM toJSON (serde_json escaping ~ JSON.stringify for these strings)
  return `{"blocks":[${st.blocks.map((e) => `[${idJ(e.key)},{"id":${idJ(e.b.id)},"text":${JSON.stringify(e.b.text)},"left_origin":${idJ(e.b.left_origin)},"right_origin":${idJ(e.b.right_origin)},"deleted":${e.b.deleted}}]`).join(',')}],"clock":{"value":${st.clock}},"client_id":${JSON.stringify(st.client_id)}}`;
}
// What WasmFugueText.fromJSON(state).toString() shows: visible texts in key order.
export function renderKeyOrder(st) { return st.blocks.filter((e) => !e.b.deleted).map((e) => e.b.text).join(''); }
// What any replica shows right after merge(): Fugue-tree traversal over the block set.
export function renderTree(st) {
  const B = st.blocks; const n = B.length;
  const len = B.map((e) => glen(e.b.text));
  // origin (client, clock) -> index of first block in key order with same client whose
  // range [key.clock-len+1, key.clock] contains clock; origin.offset ignored.
  const find = (o) => {
    if (!o) return -1;
    for (let i = 0; i < n; i++) { const k = B[i].key; if (k.client_id === o.client_id && k.clock >= o.clock && k.clock - len[i] + 1 <= o.clock) return i; }
    return -1;
  };
  const parent = new Array(n).fill(-1), side = new Array(n).fill('R');
  const isAnc = (a, b) => { let c = b; const seen = new Set(); while (c !== -1 && !seen.has(c)) { if (c === a) return true; seen.add(c); c = parent[c]; } return false; };
  for (let i = 0; i < n; i++) { // key order; parent[] of later blocks still -1
    const a = find(B[i].b.left_origin), b = find(B[i].b.right_origin);
    if (a === -1 && b === -1) { parent[i] = -1; side[i] = 'R'; }
    else if (b === -1) { parent[i] = a; side[i] = 'R'; }
    else if (a === -1) { parent[i] = b; side[i] = 'L'; }
    else if (isAnc(a, b)) { parent[i] = b; side[i] = 'L'; }
    else { parent[i] = a; side[i] = 'R'; }
  }
  const L = Array.from({length: n}, () => []), R = Array.from({length: n}, () => []), roots = [];
  for (let i = 0; i < n; i++) { if (parent[i] === -1) roots.push(i); else (side[i] === 'L' ? L : R)[parent[i]].push(i); }
  // children lists are already in key order (i ascending)
  let out = '';
  const stack = []; // iterative in-order: frames [node, phase]
  for (const r of roots) {
    stack.push([r, 0]);
    while (stack.length) {
      const f = stack[stack.length - 1]; const v = f[0];
      if (f[1] === 0) { f[1] = 1; for (let j = L[v].length - 1; j >= 0; j--) stack.push([L[v][j], 0]); }
      else { stack.pop(); if (!B[v].b.deleted) out += B[v].b.text; for (let j = R[v].length - 1; j >= 0; j--) stack.push([R[v][j], 0]); }
    }
  }
  return out;
}
