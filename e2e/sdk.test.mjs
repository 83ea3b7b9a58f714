// The real SyncKit SDK 0.3.0 against our server, in the three set-ups users run: one in-memory instance,
// one PostgreSQL instance (restarted before the late joiner arrives, so what it sees came from the
// database), and two instances over Redis with the writers on different instances. Every case has two
// writers editing at the same time and a late joiner; all three must end with the same value, holding
// both writers' edits.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Link, Server, client, docId, required, settled, until } from './lib/harness.mjs'

const setups = [
  {
    name: 'one in-memory instance',
    servers: () => [new Server('memory', {})]
  },
  {
    name: 'one PostgreSQL instance, restarted before the late joiner',
    restart: true,
    servers: () => [new Server('postgres', { DATABASE_URL: required('SYNCKIT_E2E_DB_URL') })]
  },
  {
    name: 'two instances over Redis, writers on different instances',
    servers: () => [1, 2].map((n) => new Server(`cluster-${n}`, {
      DATABASE_URL: required('SYNCKIT_E2E_CLUSTER_DB_URL'),
      REDIS_URL: required('SYNCKIT_E2E_REDIS_URL'),
      REDIS_CHANNEL_PREFIX: required('SYNCKIT_E2E_REDIS_PREFIX')
    }))
  }
]

// What each data type looks like to a test: how to open it and how to read its value comparably.
const kinds = {
  document: { open: async (s, id) => { const d = s.document(id); await d.init(); return d }, read: (d) => d.get() },
  text: { open: async (s, id) => { const t = s.text(id); await t.init(); return t }, read: (t) => t.get() },
  counter: { open: async (s, id) => { const c = s.counter(id); await c.init(); return c }, read: (c) => c.value },
  set: { open: async (s, id) => { const x = s.set(id); await x.init(); return x }, read: (x) => [...x.values()].sort() },
  richtext: { open: async (s, id) => { const t = s.richText(id); await t.init(); return t }, read: (t) => t.get() }
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)

// SDK 0.3.0 counters add whatever the server sends and say nothing on subscribe that tells a returning
// client from a new one, so a counter that reconnects counts the total the server hands out again
// (README, "Data types"). Across a restart the writers therefore leave first; the late joiner's total
// is what comes from the database.
const COUNTER = { writersLeaveBeforeRestart: true }

for (const setup of setups) {
  describe(setup.name, () => {
    let servers
    before(async () => { servers = setup.servers(); await Promise.all(servers.map((s) => s.start())) })
    after(async () => { await Promise.all((servers ?? []).map((s) => s.stop())) })

    /**
     * Two writers (A on the first instance, B on the last) and a late joiner C (on the first). write(a, b,
     * clients) does the edits; done(value) says whether a value holds everything written.
     */
    async function scenario (kind, write, done, { writersLeaveBeforeRestart = false } = {}) {
      const { open, read } = kinds[kind]
      const id = docId(kind)
      const links = await Promise.all([servers[0], servers.at(-1), servers[0]].map((s) => new Link(s).open()))
      const clients = []
      const logs = () => servers.map((s) => `--- ${s.name}\n${s.tail()}`).join('\n')
      try {
        const a = await client(links[0], 'a'); clients.push(a)
        const b = await client(links[1], 'b'); clients.push(b)
        const objA = await open(a.sync, id)
        const objB = await open(b.sync, id)
        await write(objA, objB, { a, b })
        const show = (objs) => () => JSON.stringify(objs.map(read)) + '\n' + logs()
        await until('A and B to hold both edits', () => done(read(objA)) && same(read(objA), read(objB)), show([objA, objB]))
        const writers = [objA, objB]
        if (setup.restart) {
          if (writersLeaveBeforeRestart) {
            a.sync.dispose(); b.sync.dispose()
            clients.length = 0
            writers.length = 0
          }
          await servers[0].stop()
          await servers[0].start()
          await until('the writers to reconnect', () => clients.every((c) => c.connected()))
        }
        const c = await client(links[2], 'c'); clients.push(c)
        const objC = await open(c.sync, id)
        await settled('all of them, the late joiner too, to hold both edits',
          () => done(read(objC)) && writers.every((w) => same(read(w), read(objC))), show([...writers, objC]))
        return [objC, ...writers].map(read)
      } finally {
        for (const c of clients) c.sync.dispose()
        await Promise.all(links.map((l) => l.close()))
      }
    }

    test('document fields', async () => {
      const [value] = await scenario('document',
        (a, b) => Promise.all([a.set('title', 'from A'), b.set('done', true)]),
        (v) => v.title === 'from A' && v.done === true)
      assert.deepEqual(value, { title: 'from A', done: true })
    })

    test('text: concurrent inserts at different positions', async () => {
      const [value] = await scenario('text', async (a, b) => {
        await a.insert(0, 'Hello World')
        await until('B to see the base text', () => b.get() === 'Hello World', () => JSON.stringify(b.get()))
        await Promise.all([a.insert(0, 'Big '), b.insert(11, '!')])
      }, (v) => v.includes('Big ') && v.includes('!') && v.includes('Hello'))
      assert.match(value, /Big /)
      assert.match(value, /!/)
    })

    test('text: one writer offline, editing, then reconnecting', async () => {
      await scenario('text', async (a, b, { b: writerB }) => {
        await a.insert(0, 'shared ')
        await until('B to see the base text', () => b.get() === 'shared ', () => JSON.stringify(b.get()))
        writerB.link.offline()
        await until('B to notice it is offline', () => !writerB.connected())
        await b.insert(b.get().length, 'offline-B')
        await a.insert(0, 'online-A ')
        writerB.link.online()
      }, (v) => v.includes('offline-B') && v.includes('online-A ') && v.includes('shared'))
    })

    test('rich text: concurrent typing and formatting', async () => {
      // SDK 0.3.0 applies no formatting that arrives from a server (README, "Data types"): the server
      // keeps the format ops; here the text must converge and the formatting must not get in its way.
      let writerA
      const [value] = await scenario('richtext', async (a, b) => {
        writerA = a
        await a.insert(0, 'Hello World')
        await until('B to see the base text', () => b.get() === 'Hello World', () => JSON.stringify(b.get()))
        await Promise.all([a.format(0, 5, { bold: true }), b.insert(11, '!')])
      }, (v) => v === 'Hello World!')
      assert.equal(value, 'Hello World!')
      assert.deepEqual(writerA.getFormats(0), { bold: true })
    })

    test('counter', async () => {
      const [value] = await scenario('counter',
        (a, b) => Promise.all([a.increment(3), b.increment(4)]),
        (v) => v === 7, COUNTER)
      assert.equal(value, 7)
    })

    test('counter: increments and decrements', async () => {
      const [value] = await scenario('counter', async (a, b) => {
        await Promise.all([a.increment(10), b.decrement(2)])
        await Promise.all([a.decrement(1), b.increment(5)])
      }, (v) => v === 12, COUNTER)
      assert.equal(value, 12)
    })

    test('set', async () => {
      const [value] = await scenario('set',
        (a, b) => Promise.all([a.add('x'), b.add('y')]),
        (v) => same(v, ['x', 'y']))
      assert.deepEqual(value, ['x', 'y'])
    })

    test('set: adds and a remove', async () => {
      const [value] = await scenario('set', async (a, b) => {
        await Promise.all([a.add('x'), b.add('y'), b.add('z')])
        await until('A to see z', () => a.has('z'))
        await a.remove('z')
      }, (v) => same(v, ['x', 'y']))
      assert.deepEqual(value, ['x', 'y'])
    })
  })
}
