// The SDK 0.3.0's own WebAssembly core, as installed by SdkSuiteIT (npm install in e2e/).
import fs from 'node:fs'
const dir = new URL('../node_modules/@synckit-js/sdk/wasm/default/', import.meta.url)
const core = await import(new URL('synckit_core.js', dir).href)
core.initSync({ module: fs.readFileSync(new URL('synckit_core_bg.wasm', dir)) })
export default core
export const T = core.WasmFugueText
