'use strict'
// Emulation of the WeChat Mini Program `wx.connectSocket` API on top of the
// npm `ws` package, for driving mqtt.js's own `wx` transport from Node.
//
// What a real Mini Program sends (and this shim reproduces):
//   - `Referer: https://servicewechat.com/<appid>/<version>/page-frame.html`
//   - a MicroMessenger User-Agent
//   - the subprotocols passed in `protocols` (mqtt.js passes ['mqtt'])
//   - no permessage-deflate offer (wx.connectSocket's perMessageDeflate
//     defaults to false) and no Origin header
// Binary messages are delivered to onMessage as ArrayBuffer, text as string,
// and send() accepts only string or ArrayBuffer, like the real SocketTask.
//
// Every socket is recorded (url, request headers, negotiated subprotocol,
// response status/headers, each frame sent/received, close code) in
// `wx.__records`, so a harness can report what went over the wire.
//
// Environment (all optional):
//   MP_CA          path to a CA PEM file that TLS must trust (ws option `ca`)
//   MP_SERVERNAME  TLS SNI name (default: the URL's host unless it is an IP)
//   MP_INSECURE=1  do not verify the server certificate
//   MP_USER_AGENT, MP_REFERER   override the two WeChat headers
//   MP_ORIGIN      add an Origin header (real Mini Programs send none)

const fs = require('fs')
const WebSocket = require('ws')

const DEFAULT_REFERER = 'https://servicewechat.com/wx1234567890abcdef/0/page-frame.html'
const DEFAULT_USER_AGENT =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 ' +
  '(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.59(0x18003b2e) ' +
  'NetType/WIFI Language/zh_CN MiniProgramEnv/iOS'

// How many bytes of each frame are kept as hex in the record.
const HEX_LIMIT = 512

function isArrayBuffer (v) {
  // Works across realms (mqtt.js bundles may run in another context).
  return Object.prototype.toString.call(v) === '[object ArrayBuffer]'
}

function callAsync (fn, arg) {
  if (typeof fn === 'function') setImmediate(() => fn(arg))
}

function settle (opts, ok, res) {
  opts = opts || {}
  callAsync(ok ? opts.success : opts.fail, res)
  callAsync(opts.complete, res)
}

function envOptions (env) {
  env = env || process.env
  const o = {}
  if (env.MP_CA) o.ca = env.MP_CA
  if (env.MP_SERVERNAME) o.servername = env.MP_SERVERNAME
  if (env.MP_INSECURE === '1' || env.MP_INSECURE === 'true') o.rejectUnauthorized = false
  if (env.MP_USER_AGENT) o.userAgent = env.MP_USER_AGENT
  if (env.MP_REFERER) o.referer = env.MP_REFERER
  if (env.MP_ORIGIN) o.origin = env.MP_ORIGIN
  if (env.MP_TIMEOUT_MS) o.handshakeTimeout = Number(env.MP_TIMEOUT_MS)
  return o
}

class SocketTask {
  constructor (ws, record) {
    this._ws = ws
    this._record = record
    this._listeners = { open: [], message: [], close: [], error: [] }
    this._closed = false
  }

  _emit (name, arg) {
    for (const cb of this._listeners[name].slice()) {
      try {
        cb(arg)
      } catch (e) {
        // WeChat reports listener exceptions to the console; so do we, but
        // rethrow on the next tick so bugs are not hidden.
        setImmediate(() => { throw e })
      }
    }
  }

  onOpen (cb) { this._listeners.open.push(cb) }
  onMessage (cb) { this._listeners.message.push(cb) }
  onClose (cb) { this._listeners.close.push(cb) }
  onError (cb) { this._listeners.error.push(cb) }

  get readyState () { return this._ws.readyState }

  send (opts) {
    opts = opts || {}
    const data = opts.data
    if (this._ws.readyState !== WebSocket.OPEN) {
      settle(opts, false, { errMsg: 'sendSocketMessage:fail WebSocket is not connected' })
      return
    }
    let payload
    let binary
    if (typeof data === 'string') {
      payload = data
      binary = false
    } else if (isArrayBuffer(data)) {
      payload = Buffer.from(data)
      binary = true
    } else {
      settle(opts, false, { errMsg: 'sendSocketMessage:fail parameter error: data should be String or ArrayBuffer' })
      return
    }
    const bytes = binary ? payload : Buffer.from(payload, 'utf8')
    this._record.sent.push({
      t: Date.now() - this._record.started,
      binary,
      len: bytes.length,
      hex: bytes.subarray(0, HEX_LIMIT).toString('hex')
    })
    this._record.sentBytes.push(Buffer.from(bytes))
    this._ws.send(payload, { binary }, (err) => {
      if (err) settle(opts, false, { errMsg: 'sendSocketMessage:fail ' + err.message })
      else settle(opts, true, { errMsg: 'sendSocketMessage:ok' })
    })
  }

  close (opts) {
    opts = opts || {}
    const code = opts.code === undefined ? 1000 : opts.code
    const reason = opts.reason === undefined ? '' : String(opts.reason)
    const state = this._ws.readyState
    if (state === WebSocket.CLOSED || state === WebSocket.CLOSING) {
      // Closing an already closed task is harmless in WeChat.
      settle(opts, true, { errMsg: 'closeSocket:ok' })
      return
    }
    try {
      if (state === WebSocket.CONNECTING) this._ws.terminate()
      else this._ws.close(code, reason)
      this._record.closeRequested = { code, reason }
      settle(opts, true, { errMsg: 'closeSocket:ok' })
    } catch (e) {
      settle(opts, false, { errMsg: 'closeSocket:fail ' + e.message })
    }
  }
}

/**
 * Builds a `wx` object whose connectSocket uses `ws`.
 * @param {object} [options] ca (PEM text, Buffer or file path), servername,
 *   rejectUnauthorized, userAgent, referer, origin, handshakeTimeout, headers,
 *   onSocket(task, record) called for every socket before it is returned
 */
function createWx (options) {
  options = Object.assign({}, envOptions(), options || {})
  let ca
  if (options.ca) {
    if (Buffer.isBuffer(options.ca) || /-----BEGIN/.test(String(options.ca))) ca = options.ca
    else ca = fs.readFileSync(options.ca)
  }
  const records = []

  function connectSocket (obj) {
    obj = obj || {}
    const url = obj.url
    if (typeof url !== 'string' || !/^wss?:\/\//i.test(url)) {
      settle(obj, false, { errMsg: 'connectSocket:fail invalid url "' + url + '"' })
      throw new Error('connectSocket:fail invalid url "' + url + '"')
    }
    let protocols = obj.protocols
    if (protocols !== undefined && !Array.isArray(protocols)) protocols = [protocols]

    // Headers a Mini Program's WebView-less socket sends. The Referer cannot
    // be overridden from the Mini Program (WeChat ignores it in `header`).
    const headers = Object.assign({}, obj.header || {}, options.headers || {})
    for (const k of Object.keys(headers)) {
      if (k.toLowerCase() === 'referer' || k.toLowerCase() === 'user-agent') delete headers[k]
    }
    headers['User-Agent'] = options.userAgent || DEFAULT_USER_AGENT
    headers.Referer = options.referer || DEFAULT_REFERER

    const wsOpts = {
      headers,
      perMessageDeflate: obj.perMessageDeflate === true,
      handshakeTimeout: obj.timeout || options.handshakeTimeout || 10000,
      followRedirects: false
    }
    if (options.origin) wsOpts.origin = options.origin
    if (ca) wsOpts.ca = ca
    if (options.servername !== undefined) wsOpts.servername = options.servername
    if (options.rejectUnauthorized === false) wsOpts.rejectUnauthorized = false

    const record = {
      url,
      protocols: protocols || [],
      requestHeaders: headers,
      started: Date.now(),
      opened: false,
      subprotocol: null,
      responseStatus: null,
      responseHeaders: null,
      sent: [],
      sentBytes: [],
      received: [],
      receivedBytes: [],
      errors: [],
      close: null,
      closeRequested: null
    }
    records.push(record)

    const ws = new WebSocket(url, protocols && protocols.length ? protocols : undefined, wsOpts)
    ws.binaryType = 'arraybuffer'
    const task = new SocketTask(ws, record)

    ws.on('upgrade', (res) => {
      record.responseStatus = res.statusCode
      record.responseHeaders = res.headers
    })
    ws.on('unexpected-response', (req, res) => {
      record.responseStatus = res.statusCode
      record.responseHeaders = res.headers
      res.resume()
      // Report the HTTP status first; ws then aborts the handshake and emits
      // its own (deduplicated) error and a 1006 close.
      onError(new Error('connectSocket:fail Unexpected server response: ' + res.statusCode))
      ws.terminate()
    })
    ws.on('open', () => {
      record.opened = true
      record.subprotocol = ws.protocol
      record.openedAt = Date.now() - record.started
      task._emit('open', { header: record.responseHeaders || {}, profile: {} })
    })
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.from(data)
      record.received.push({
        t: Date.now() - record.started,
        binary: isBinary,
        len: buf.length,
        hex: buf.subarray(0, HEX_LIMIT).toString('hex')
      })
      record.receivedBytes.push(buf)
      task._emit('message', { data: isBinary ? data : buf.toString('utf8') })
    })
    let errored = false
    function onError (err) {
      if (errored) return
      errored = true
      record.errors.push(err.message)
      task._emit('error', { errMsg: err.message })
    }
    let closed = false
    function onClose (code, reason) {
      if (closed) return
      closed = true
      record.close = { code, reason: reason ? reason.toString() : '' }
      task._emit('close', { code, reason: record.close.reason })
    }
    ws.on('error', onError)
    ws.on('close', onClose)

    if (typeof options.onSocket === 'function') options.onSocket(task, record)
    settle(obj, true, { errMsg: 'connectSocket:ok' })
    return task
  }

  const wx = {
    connectSocket,
    // Not used by mqtt.js, present so code that probes for them finds them.
    getSystemInfoSync () {
      return { platform: 'ios', system: 'iOS 17.0', version: '8.0.59', SDKVersion: '3.5.0' }
    },
    __records: records
  }
  return wx
}

module.exports = { createWx, envOptions, DEFAULT_REFERER, DEFAULT_USER_AGENT }
