#!/usr/bin/env node
'use strict'
// Plays a WeChat Mini Program against an MQTT-over-WebSocket endpoint, using
// mqtt.js's own `wx` transport on top of the wx.connectSocket emulation in
// wx-shim.js. Prints exactly one JSON line on stdout and exits 0 (ok) or 1.
// See README.md in this folder for the options and the output.

const fs = require('fs')
const path = require('path')
const vm = require('vm')
const crypto = require('crypto')
const { createWx, DEFAULT_USER_AGENT } = require('./wx-shim')

const T0 = Date.now()

// ---------------------------------------------------------------- options --

function parseArgs (argv) {
  const out = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) {
      if (out.url === undefined) out.url = a
      continue
    }
    const eq = a.indexOf('=')
    if (eq > 0) {
      out[a.slice(2, eq)] = a.slice(eq + 1)
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out[a.slice(2)] = argv[++i]
    } else {
      out[a.slice(2)] = '1'
    }
  }
  return out
}

const ARGS = parseArgs(process.argv.slice(2))
const ENV = process.env
function opt (arg, env, dflt) {
  if (ARGS[arg] !== undefined) return ARGS[arg]
  if (ENV[env] !== undefined && ENV[env] !== '') return ENV[env]
  return dflt
}
const RAND = crypto.randomBytes(4).toString('hex')
const truthy = (v) => v === '1' || v === 'true' || v === 'yes'

const CFG = {
  url: opt('url', 'MP_URL', 'wxs://localhost:8443/mqtt'),
  ca: opt('ca', 'MP_CA', undefined),
  servername: opt('servername', 'MP_SERVERNAME', undefined),
  insecure: truthy(opt('insecure', 'MP_INSECURE', '0')),
  flavour: String(opt('flavour', 'MP_FLAVOUR', '4')),
  mode: opt('mode', 'MP_MODE', 'mqtt'),
  topic: opt('topic', 'MP_TOPIC', 'mp/test/' + RAND),
  timeoutMs: Number(opt('timeout-ms', 'MP_TIMEOUT_MS', '10000')),
  clientId: opt('client-id', 'MP_CLIENT_ID', undefined),
  username: opt('username', 'MP_USERNAME', undefined),
  password: opt('password', 'MP_PASSWORD', undefined),
  mqttVersion: Number(opt('mqtt-version', 'MP_MQTT_VERSION', '4')),
  keepalive: Number(opt('keepalive', 'MP_KEEPALIVE', '60')),
  trace: truthy(opt('trace', 'MP_TRACE', '0'))
}
if (!Number.isFinite(CFG.timeoutMs) || CFG.timeoutMs <= 0) CFG.timeoutMs = 10000

const MODES = ['mqtt', 'piggyback', 'pipeline']

// --------------------------------------------------------------- result ----

let stage = 'connect'
let finished = false
let wx = null
const wxHooks = {}

function lastRecord () {
  return wx && wx.__records.length ? wx.__records[wx.__records.length - 1] : null
}

function wireSummary () {
  const r = lastRecord()
  if (!r) return {}
  return {
    subprotocol: r.subprotocol,
    frames_sent: r.sent.length,
    frames_received: r.received.length,
    close_code: r.close ? r.close.code : null
  }
}

function finish (obj, code) {
  if (finished) return
  finished = true
  obj.elapsed_ms = Date.now() - T0
  if (CFG.trace && wx) {
    for (const r of wx.__records) {
      const copy = Object.assign({}, r)
      delete copy.sentBytes
      delete copy.receivedBytes
      try { fs.writeSync(2, 'trace ' + JSON.stringify(copy) + '\n') } catch (_) {}
    }
  }
  // Synchronous write, then exit: nothing left open can keep us alive.
  try { fs.writeSync(1, JSON.stringify(obj) + '\n') } catch (_) {}
  process.exit(code)
}

function fail (err, atStage) {
  const r = lastRecord()
  const out = {
    ok: false,
    error: err && err.message ? err.message : String(err),
    stage: atStage || stage,
    flavour: flavourLabel(),
    mode: CFG.mode
  }
  if (r) {
    if (r.responseStatus !== null && r.responseStatus !== 101) out.http_status = r.responseStatus
    if (r.errors.length) out.ws_errors = r.errors
    Object.assign(out, wireSummary())
  }
  finish(out, 1)
}

function flavourLabel () {
  return CFG.mode === 'mqtt' ? CFG.flavour : 'raw'
}

process.on('uncaughtException', (e) => fail(e))
process.on('unhandledRejection', (e) => fail(e))

// One deadline for the whole run; every wait below is bounded by it.
const DEADLINE = T0 + CFG.timeoutMs
const watchdog = setTimeout(() => {
  fail(new Error('timeout after ' + CFG.timeoutMs + ' ms'))
}, CFG.timeoutMs)
function remaining () { return Math.max(1, DEADLINE - Date.now()) }

function withTimeout (promise, ms, what) {
  let t
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      t = setTimeout(() => reject(new Error('timeout waiting for ' + what)), ms)
    })
  ]).finally(() => clearTimeout(t))
}

// ------------------------------------------------------------ MQTT bytes ---

function u16 (n) {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}
function mqttString (s) {
  const b = Buffer.from(s, 'utf8')
  return Buffer.concat([u16(b.length), b])
}
function varint (n) {
  const out = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}
function packet (first, body) {
  return Buffer.concat([Buffer.from([first]), varint(body.length), body])
}
const enc = {
  connect (clientId, keepalive, username, password) {
    let flags = 0x02 // clean session
    if (username !== undefined) flags |= 0x80
    if (password !== undefined) flags |= 0x40
    const parts = [mqttString('MQTT'), Buffer.from([0x04, flags]), u16(keepalive), mqttString(clientId)]
    if (username !== undefined) parts.push(mqttString(username))
    if (password !== undefined) parts.push(mqttString(password))
    return packet(0x10, Buffer.concat(parts))
  },
  subscribe (pid, topic, qos) {
    return packet(0x82, Buffer.concat([u16(pid), mqttString(topic), Buffer.from([qos])]))
  },
  publish (topic, payload, qos, pid) {
    const parts = [mqttString(topic)]
    if (qos > 0) parts.push(u16(pid))
    parts.push(Buffer.from(payload, 'utf8'))
    return packet(0x30 | (qos << 1), Buffer.concat(parts))
  },
  puback (pid) { return packet(0x40, u16(pid)) },
  unsubscribe (pid, topics) {
    return packet(0xa2, Buffer.concat([u16(pid)].concat(topics.map(mqttString))))
  },
  disconnect () { return Buffer.from([0xe0, 0x00]) }
}

// Splits `buf` into complete MQTT packets; returns { packets, rest }.
function splitPackets (buf) {
  const packets = []
  let off = 0
  for (;;) {
    if (buf.length - off < 2) break
    let mult = 1
    let len = 0
    let i = off + 1
    let complete = false
    for (let n = 0; n < 4 && i < buf.length; n++, i++) {
      len += (buf[i] & 0x7f) * mult
      mult *= 128
      if ((buf[i] & 0x80) === 0) { complete = true; i++; break }
    }
    if (!complete || buf.length < i + len) break
    packets.push({ type: buf[off] >> 4, flags: buf[off] & 0x0f, body: buf.subarray(i, i + len) })
    off = i + len
  }
  return { packets, rest: buf.subarray(off) }
}

// Packet types of a frame that holds only whole packets, else null.
function wholePacketTypes (frame) {
  const { packets, rest } = splitPackets(frame)
  return rest.length === 0 && packets.length ? packets.map((p) => p.type) : null
}

function decodePublish (p) {
  const qos = (p.flags >> 1) & 3
  const tlen = p.body.readUInt16BE(0)
  const topic = p.body.subarray(2, 2 + tlen).toString('utf8')
  let off = 2 + tlen
  let pid = null
  if (qos > 0) { pid = p.body.readUInt16BE(off); off += 2 }
  return { topic, qos, pid, payload: p.body.subarray(off).toString('utf8') }
}

function toArrayBuffer (buf) {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)
}

function wsUrl (u) {
  // The same mapping mqtt.js's wx transport applies: wxs -> wss, wx -> ws.
  return u.replace(/^wxs:/i, 'wss:').replace(/^wx:/i, 'ws:')
}

// ---------------------------------------------------------- mqtt.js load ---

// Names a Mini Program's JS context does not have (or has its own of): the
// bundles see them as undefined, so they take their browser paths, use their
// own Buffer/process shims and reach `wx` as a free global identifier.
const HIDDEN = ['module', 'exports', 'require', 'window', 'self', 'document', 'navigator',
  'process', 'global', 'define', '__webpack_require__', 'Buffer', 'setImmediate', 'clearImmediate']

function evalBundle (file, returnExpr, given) {
  if (!fs.existsSync(file)) {
    throw new Error(file + ' is missing: run `npm ci` in ' + __dirname)
  }
  const names = ['wx'].concat(HIDDEN)
  const code = fs.readFileSync(file, 'utf8')
  // Same realm as the shim, so `data instanceof ArrayBuffer` holds in the
  // transport, as it does inside WeChat.
  const fn = vm.runInThisContext(
    '(function (' + names.join(', ') + ') {' + code + '\n;return ' + returnExpr + ';\n})',
    { filename: file }
  )
  return fn.apply(undefined, names.map((n) => given[n]))
}

function loadMqtt (flavour, wxObj) {
  const nm = path.join(__dirname, 'node_modules')
  if (flavour === '4') {
    // browserify UMD bundle: with `module`/`exports` present it sets
    // module.exports; its connect() registers wx/wxs because the bundled
    // `process` shim has title 'browser' and __webpack_require__ is absent.
    const module = { exports: {} }
    return evalBundle(path.join(nm, 'mqtt4', 'dist', 'mqtt.min.js'), 'module.exports', {
      wx: wxObj, module, exports: module.exports
    })
  }
  if (flavour === '5') {
    // esbuild IIFE bundle (`var mqtt = (() => {...})()`). Its process
    // polyfill reads navigator.language at load time, so a Mini Program
    // needs a navigator polyfill (the mqtt.js README imports one).
    const navigator = { language: 'zh_CN', userAgent: DEFAULT_USER_AGENT, platform: 'iPhone' }
    return evalBundle(path.join(nm, 'mqtt5', 'dist', 'mqtt.min.js'), 'mqtt', { wx: wxObj, navigator })
  }
  throw new Error('MP_FLAVOUR must be 4 or 5, not ' + JSON.stringify(flavour))
}

// ------------------------------------------------------------- mqtt mode ---

async function runMqtt () {
  stage = 'connect'
  const mqtt = loadMqtt(CFG.flavour, wx)
  const topic = CFG.topic
  const topic2 = topic + '/qos1'
  const topic3 = topic + '/batch'
  const payloads = [
    'hello-from-mp' + CFG.flavour + '-' + RAND,
    '小程序-qos1-' + RAND,
    'batched-sub-pub-' + RAND
  ]
  const opts = {
    clientId: CFG.clientId || 'mp' + CFG.flavour + '_' + RAND,
    clean: true,
    keepalive: CFG.keepalive,
    reconnectPeriod: 0,
    connectTimeout: CFG.timeoutMs,
    protocolVersion: CFG.mqttVersion
  }
  if (CFG.username !== undefined) opts.username = CFG.username
  if (CFG.password !== undefined) opts.password = CFG.password
  if (CFG.flavour === '5') {
    // What the mqtt.js 5 README asks of Mini Programs: no ws-package
    // detection (registers wx/wxs) and plain setInterval timers.
    opts.forceNativeWebSocket = true
    opts.timerVariant = 'native'
  }

  const received = []
  const waiters = []
  let ending = false
  let connected = false

  // mqtt.js 4.2.1's wx transport swallows socket errors (its overridden
  // stream.destroy drops the error), so a TLS or HTTP failure would only show
  // up as a CONNACK timeout: report the socket's own error instead.
  let socketFailed = () => {}
  const socketDown = new Promise((resolve, reject) => { socketFailed = reject })
  socketDown.catch(() => {})
  wxHooks.onSocket = (task, r) => {
    task.onClose((c) => {
      if (connected) return
      const why = r.errors.length ? r.errors.join('; ') : 'socket closed (code ' + c.code + ')'
      socketFailed(new Error(why + ' before CONNACK'))
    })
  }

  const client = mqtt.connect(CFG.url, opts)
  client.on('message', (t, payload) => {
    received.push(Buffer.from(payload).toString('utf8'))
    for (const w of waiters.slice()) w()
  })
  const connectP = new Promise((resolve, reject) => {
    client.once('connect', (connack) => { connected = true; resolve(connack) })
    client.on('error', (e) => { if (!connected) reject(e); else if (!ending) fail(e) })
    client.on('close', () => {
      if (!connected) reject(new Error('connection closed before CONNACK'))
      else if (!ending) fail(new Error('connection closed by peer'))
    })
  })
  await withTimeout(Promise.race([connectP, socketDown]), remaining(), 'CONNACK')

  function waitReceived (p, what) {
    return withTimeout(new Promise((resolve) => {
      const check = () => {
        if (received.includes(p)) {
          waiters.splice(waiters.indexOf(check), 1)
          resolve()
        }
      }
      waiters.push(check)
      check()
    }), remaining(), what)
  }
  function subscribeP (t, qos) {
    return new Promise((resolve, reject) => {
      client.subscribe(t, { qos }, (err, granted) => {
        if (err) return reject(err)
        const bad = (granted || []).find((g) => g.qos === 128 || g.qos > 2)
        if (bad) return reject(new Error('subscription to ' + t + ' refused (SUBACK 0x80)'))
        resolve(granted)
      })
    })
  }
  function publishP (t, payload, qos) {
    return new Promise((resolve, reject) => {
      client.publish(t, payload, { qos }, (err) => (err ? reject(err) : resolve()))
    })
  }

  stage = 'subscribe'
  await withTimeout(Promise.all([subscribeP(topic, 0), subscribeP(topic2, 1)]), remaining(), 'SUBACK')

  stage = 'publish'
  const got1 = waitReceived(payloads[0], 'QoS 0 message on ' + topic)
  const got2 = waitReceived(payloads[1], 'QoS 1 message on ' + topic2)
  got1.catch(() => {})
  got2.catch(() => {})
  await withTimeout(Promise.all([publishP(topic, payloads[0], 0), publishP(topic2, payloads[1], 1)]), remaining(), 'PUBACK')

  stage = 'receive'
  await got1
  await got2

  // SUBSCRIBE and PUBLISH issued in one tick: mqtt.js 5 corks the stream and
  // its BufferedDuplex concatenates them into one WebSocket message; 4.2.1
  // sends every piece of every packet as its own message.
  stage = 'subscribe'
  const rec = lastRecord()
  const firstFrame = rec.sent.length
  const got3 = waitReceived(payloads[2], 'batched message on ' + topic3)
  got3.catch(() => {})
  const sub3 = subscribeP(topic3, 0)
  const pub3 = publishP(topic3, payloads[2], 0)
  await withTimeout(Promise.all([sub3, pub3]), remaining(), 'SUBACK for ' + topic3)
  stage = 'receive'
  await got3
  let batched = false
  for (const frame of rec.sentBytes.slice(firstFrame)) {
    const types = wholePacketTypes(frame)
    if (types && types.includes(8) && types.includes(3)) batched = true
  }

  stage = 'unsubscribe'
  await withTimeout(new Promise((resolve, reject) => {
    client.unsubscribe([topic, topic2, topic3], (err) => (err ? reject(err) : resolve()))
  }), remaining(), 'UNSUBACK')

  // mqtt.js sends DISCONNECT and closes the SocketTask. With 4.2.1's wx
  // transport the end() callback never fires (its stream never emits
  // 'close'), so the socket's own close is what we wait for.
  stage = 'end'
  ending = true
  let endCallback = false
  const endP = new Promise((resolve) => client.end(false, {}, () => { endCallback = true; resolve() }))
  const sockClosed = new Promise((resolve) => {
    const poll = setInterval(() => { if (rec.close) { clearInterval(poll); resolve() } }, 10)
  })
  await withTimeout(Promise.race([endP, sockClosed]), remaining(), 'end of connection')
  await withTimeout(sockClosed, remaining(), 'WebSocket close')
  // A short grace so a late end() callback is still seen.
  await new Promise((resolve) => setTimeout(resolve, 50))

  const sentTypes = []
  for (const f of rec.sentBytes) {
    const t = wholePacketTypes(f)
    if (t) sentTypes.push(t)
  }
  return Object.assign({
    ok: true,
    flavour: CFG.flavour,
    mode: 'mqtt',
    connected: true,
    received,
    topic,
    client_id: opts.clientId,
    batched,
    fragmented: sentTypes.length < rec.sentBytes.length,
    end_callback: endCallback
  }, wireSummary())
}

// -------------------------------------------------- raw piggyback modes ----

// Raw MQTT 3.1.1 over the shim's SocketTask. `piggyback`: CONNECT, then after
// CONNACK one binary message holding SUBSCRIBE+PUBLISH. `pipeline`: CONNECT,
// SUBSCRIBE and PUBLISH all in the first message, without waiting for CONNACK.
async function runRaw () {
  stage = 'connect'
  const topic = CFG.topic
  const payload = CFG.mode + '-' + RAND
  const clientId = CFG.clientId || 'mpraw_' + RAND
  const received = []
  let inbuf = Buffer.alloc(0)
  let closing = false
  let suback = false
  let puback = false

  const task = wx.connectSocket({ url: wsUrl(CFG.url), protocols: ['mqtt'] })
  const rec = lastRecord()
  const send = (buf) => new Promise((resolve, reject) => {
    task.send({
      data: toArrayBuffer(buf),
      success: resolve,
      fail: (e) => reject(new Error(e.errMsg))
    })
  })

  let onPacket = () => {}
  let closedResolve
  const closed = new Promise((resolve) => { closedResolve = resolve })
  const opened = new Promise((resolve, reject) => {
    task.onOpen(resolve)
    task.onError((e) => { if (!closing) reject(new Error(e.errMsg)) })
    task.onClose((c) => {
      closedResolve(c)
      if (!closing) {
        const e = new Error(rec.errors.length
          ? rec.errors.join('; ')
          : 'socket closed by peer (code ' + c.code + ')')
        reject(e)
        fail(e)
      }
    })
  })
  task.onMessage(({ data }) => {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)
    const { packets, rest } = splitPackets(Buffer.concat([inbuf, chunk]))
    inbuf = Buffer.from(rest)
    for (const p of packets) onPacket(p)
  })

  const events = []
  const waiters = []
  function event (e) {
    events.push(e)
    for (const w of waiters.slice()) w()
  }
  function waitEvent (pred, what) {
    return withTimeout(new Promise((resolve) => {
      const check = () => {
        const e = events.find(pred)
        if (e) { waiters.splice(waiters.indexOf(check), 1); resolve(e) }
      }
      waiters.push(check)
      check()
    }), remaining(), what)
  }

  onPacket = (p) => {
    switch (p.type) {
      case 2: // CONNACK
        event({ type: 'connack', rc: p.body[1] })
        break
      case 9: // SUBACK
        suback = true
        event({ type: 'suback', pid: p.body.readUInt16BE(0), codes: Array.from(p.body.subarray(2)) })
        break
      case 4: // PUBACK
        puback = true
        event({ type: 'puback', pid: p.body.readUInt16BE(0) })
        break
      case 3: { // PUBLISH
        const m = decodePublish(p)
        if (m.qos === 1) send(enc.puback(m.pid)).catch(() => {})
        received.push(m.payload)
        event({ type: 'publish', msg: m })
        break
      }
      case 11: // UNSUBACK
        event({ type: 'unsuback', pid: p.body.readUInt16BE(0) })
        break
      default:
        event({ type: 'other', packetType: p.type })
    }
  }

  await withTimeout(opened, remaining(), 'WebSocket open')
  const connect = enc.connect(clientId, CFG.keepalive, CFG.username, CFG.password)
  const batch = Buffer.concat([enc.subscribe(1, topic, 1), enc.publish(topic, payload, 1, 2)])
  if (CFG.mode === 'pipeline') {
    await send(Buffer.concat([connect, batch]))
  } else {
    await send(connect)
  }
  const connack = await waitEvent((e) => e.type === 'connack', 'CONNACK')
  if (connack.rc !== 0) throw new Error('CONNACK return code ' + connack.rc)
  if (CFG.mode !== 'pipeline') {
    stage = 'subscribe'
    await send(batch)
  }

  stage = 'subscribe'
  const sa = await waitEvent((e) => e.type === 'suback', 'SUBACK')
  if (sa.codes.some((c) => c >= 0x80)) throw new Error('subscription refused (SUBACK ' + sa.codes + ')')
  stage = 'publish'
  await waitEvent((e) => e.type === 'puback' && e.pid === 2, 'PUBACK')
  stage = 'receive'
  await waitEvent((e) => e.type === 'publish' && e.msg.payload === payload, 'PUBLISH back on ' + topic)

  stage = 'unsubscribe'
  await send(enc.unsubscribe(3, [topic]))
  await waitEvent((e) => e.type === 'unsuback' && e.pid === 3, 'UNSUBACK')

  stage = 'end'
  closing = true
  await send(enc.disconnect())
  task.close({ code: 1000, reason: 'bye' })
  await withTimeout(closed, remaining(), 'WebSocket close')

  return Object.assign({
    ok: true,
    flavour: 'raw',
    mode: CFG.mode,
    connected: true,
    received,
    topic,
    client_id: clientId,
    batched: true,
    suback,
    puback
  }, wireSummary())
}

// ------------------------------------------------------------------ main ---

async function main () {
  if (!MODES.includes(CFG.mode)) {
    throw new Error('MP_MODE must be one of ' + MODES.join(', ') + ', not ' + JSON.stringify(CFG.mode))
  }
  const shimOpts = {
    handshakeTimeout: CFG.timeoutMs,
    rejectUnauthorized: !CFG.insecure
  }
  if (CFG.ca) shimOpts.ca = CFG.ca
  if (CFG.servername !== undefined) shimOpts.servername = CFG.servername
  shimOpts.onSocket = (task, r) => { if (wxHooks.onSocket) wxHooks.onSocket(task, r) }
  wx = createWx(shimOpts)
  const result = CFG.mode === 'mqtt' ? await runMqtt() : await runRaw()
  clearTimeout(watchdog)
  finish(result, 0)
}

main().catch((e) => fail(e))
