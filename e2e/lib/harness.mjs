// What every end-to-end case needs: servers started as users start them (java -jar), links that can
// cut a client off, SDK clients, and patient waiting. SdkSuiteIT provides the environment; run alone,
// the suite says which variable is missing instead of guessing.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

// Several SDK clients share one process here. The SDK's cross-tab BroadcastChannel would let them sync
// text among themselves, around the server, and hide server bugs: so it reaches nobody.
globalThis.BroadcastChannel = class {
  constructor (name) { this.name = name }
  postMessage () {}
  close () {}
  addEventListener () {}
  removeEventListener () {}
}
// The SDK reports every refused reconnect on the console; the cases that cut links make many on purpose.
if (!process.env.SYNCKIT_E2E_VERBOSE) {
  console.error = () => {}
  console.warn = () => {}
}
const { default: WebSocket } = await import('ws')
globalThis.WebSocket = WebSocket
const { SyncKit } = await import('@synckit-js/sdk')

export function required (name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is not set: run this suite through SdkSuiteIT (mvn verify), which sets it`)
  }
  return value
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until check() returns a truthy value; on timeout the error shows what describe() said last. */
export async function until (what, check, describe = () => '', timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await check()
    if (result) return result
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${describe()}`)
    await sleep(50)
  }
}

/** As until(), but check() must then keep holding for holdMs: a value that only passes through is not converged. */
export async function settled (what, check, describe = () => '', timeoutMs = 20000, holdMs = 1500) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    await until(what, check, describe, Math.max(1, deadline - Date.now()))
    const since = Date.now()
    let held = true
    while (Date.now() - since < holdMs) {
      await sleep(50)
      if (!(await check())) { held = false; break }
    }
    if (held) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} to stay: ${describe()}`)
  }
}

async function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

/** One server process, started from the built jar in an empty working directory (no app.yaml). */
export class Server {
  constructor (name, env) {
    this.name = name
    this.env = env
    this.log = []
  }

  async start () {
    this.port ??= await freePort()
    const work = fs.mkdtempSync(path.join(os.tmpdir(), `synckit-e2e-${this.name}-`))
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SYNCKIT_') && !k.startsWith('SERVER_')))
    Object.assign(env, {
      HOST: '127.0.0.1',
      PORT: String(this.port),
      SYNCKIT_AUTH_REQUIRED: 'false', // the SDK 0.3.0 sends no credentials
      SYNCKIT_MAX_MESSAGES_PER_MINUTE: '1000000'
    }, this.env)
    const java = required('SYNCKIT_E2E_JAVA')
    this.ready = false
    this.process = spawn(java, ['-Xmx256m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-jar', required('SYNCKIT_E2E_JAR')],
      { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] })
    const startup = []
    const ready = new Promise((resolve, reject) => {
      const onLine = (chunk) => {
        for (const line of chunk.toString().split('\n')) {
          if (!line) continue
          const into = this.ready ? this.log : startup // startup chatter only matters if startup fails
          into.push(line)
          if (into.length > 200) into.shift()
          if (line.includes('server ready')) { this.ready = true; resolve() }
        }
      }
      this.process.stdout.on('data', onLine)
      this.process.stderr.on('data', onLine)
      this.process.once('exit', (code) => reject(new Error(`${this.name} exited (${code}) before it was ready:\n${startup.join('\n')}`)))
    })
    let timer
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} not ready after 60 s:\n${startup.join('\n')}`)), 60000)
    })
    try {
      await Promise.race([ready, timeout])
    } finally {
      clearTimeout(timer)
    }
    this.process.removeAllListeners('exit')
    return this
  }

  get url () { return `ws://127.0.0.1:${this.port}/ws` }

  /** SIGTERM, as Kubernetes stops a pod: the server drains and exits. */
  async stop () {
    if (!this.process || this.process.exitCode !== null) return
    const exited = new Promise((resolve) => this.process.once('exit', resolve))
    this.process.kill('SIGTERM')
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 30000)
    await exited
    clearTimeout(timer)
    // Its pipes would otherwise keep this process alive after the last case.
    this.process.stdout.destroy()
    this.process.stderr.destroy()
    this.process.unref()
  }

  tail () { return this.log.slice(-30).join('\n') }
}

/**
 * A TCP relay between one client and a server. offline() cuts every connection and refuses new ones,
 * as a lost network does; online() lets the client's own reconnect through again.
 */
export class Link {
  constructor (target) {
    this.target = target
    this.sockets = new Set()
    this.up = true
  }

  async open () {
    this.port = await freePort()
    this.server = net.createServer((downstream) => {
      if (!this.up) { downstream.destroy(); return }
      const upstream = net.connect(this.target.port, '127.0.0.1')
      for (const [a, b] of [[downstream, upstream], [upstream, downstream]]) {
        a.pipe(b)
        a.on('error', () => b.destroy())
        a.on('close', () => b.destroy())
        this.sockets.add(a)
        a.on('close', () => this.sockets.delete(a))
      }
    })
    await new Promise((resolve) => this.server.listen(this.port, '127.0.0.1', resolve))
    return this
  }

  get url () { return `ws://127.0.0.1:${this.port}/ws` }

  offline () {
    this.up = false
    for (const s of this.sockets) s.destroy()
  }

  online () { this.up = true }

  /** Points the link at another server (after a restart on a new port, or to move the client). */
  retarget (server) { this.target = server }

  close () {
    this.offline()
    return new Promise((resolve) => this.server.close(resolve))
  }
}

/** An SDK client as an app creates one, with in-memory storage, connected through its own link. */
export async function client (link, name) {
  const sync = new SyncKit({ serverUrl: link.url, storage: 'memory', name })
  await sync.init()
  const connected = () => sync.getNetworkStatus()?.connectionState === 'connected'
  await until(`${name} to connect`, connected, () => JSON.stringify(sync.getNetworkStatus()))
  return { name, sync, link, connected }
}

/** A unique id per case and run, so cases never see each other's documents. */
export function docId (kind) {
  return `e2e-${kind}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
}
