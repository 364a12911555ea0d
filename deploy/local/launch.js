'use strict'
// Shared plumbing for the local emulator launchers in this folder.
//
// Every launcher follows one protocol so internal/localstack (and a person at a
// shell) can drive any emulator the same way:
//   - it binds 127.0.0.1 only;
//   - once the server listens it prints exactly one line "ready <port>" on stdout;
//   - it exits when its stdin reaches end-of-file (the parent died or closed
//     the pipe), on SIGTERM, SIGINT and SIGHUP, so a crashed parent leaves no
//     orphan emulators behind; pass --detached to keep running without stdin;
//   - a client that aborts an in-flight request (a killed worker, a cancelled
//     call) must never take the server down: the emulators' own handlers throw
//     on request errors, so those throws are neutralised and logged.

const net = require('net')

// parseArgs reads "--name value" and "--flag" pairs into an object and the
// remaining words into argv._; numeric strings become numbers.
function parseArgs(argv) {
  const out = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) {
      out._.push(a)
      continue
    }
    const eq = a.indexOf('=')
    let name, value
    if (eq > 0) {
      name = a.slice(2, eq)
      value = a.slice(eq + 1)
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      name = a.slice(2)
      value = argv[++i]
    } else {
      name = a.slice(2)
      value = true
    }
    out[name] = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  }
  return out
}

function log(name, msg) {
  process.stderr.write(`${new Date().toISOString()} [${name}] ${msg}\n`)
}

// installLifecycle makes the process exit with its parent and survive errors
// that would otherwise kill it.
// beforeExit, if given, runs synchronously before the process exits.
function installLifecycle(name, opts, beforeExit) {
  const exit = (why) => {
    log(name, `exiting: ${why}`)
    if (beforeExit) beforeExit()
    process.exit(0)
  }
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => exit(sig))
  if (!opts.detached) {
    process.stdin.on('end', () => exit('stdin closed'))
    process.stdin.on('close', () => exit('stdin closed'))
    process.stdin.on('error', () => exit('stdin error'))
    process.stdin.resume()
  }
  // Last line of defence: an emulator bug or an unforeseen client-abort path
  // must not kill a server that a whole test run depends on. The error is
  // logged (the Go side shows the log tail on failure) and the server goes on.
  process.on('uncaughtException', (err) => {
    log(name, `uncaught exception (server keeps running): ${err && err.stack ? err.stack : err}`)
  })
  process.on('unhandledRejection', (err) => {
    log(name, `unhandled rejection (server keeps running): ${err && err.stack ? err.stack : err}`)
  })
}

// hardenHTTP wraps the request listeners of an http.Server built by kinesalite
// or dynalite. Both register `req.on('error', err => { throw err })`, so a
// client that disconnects while its request body is still arriving throws
// "aborted" (ECONNRESET) out of an event handler and kills the process. After
// the emulator's handler has run, its request 'error' listeners are replaced by
// one that logs.
function hardenHTTP(name, server) {
  const handlers = server.listeners('request')
  server.removeAllListeners('request')
  server.on('request', (req, res) => {
    for (const h of handlers) h.call(server, req, res)
    req.removeAllListeners('error')
    req.on('error', (err) => log(name, `client request error (ignored): ${err.code || ''} ${err.message}`))
    res.on('error', (err) => log(name, `client response error (ignored): ${err.code || ''} ${err.message}`))
  })
  server.on('clientError', (err, socket) => {
    if (err.code !== 'ECONNRESET') log(name, `client error: ${err.code || ''} ${err.message}`)
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
    else socket.destroy()
  })
  server.on('connection', (socket) => {
    socket.on('error', (err) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') log(name, `socket error: ${err.code || ''} ${err.message}`)
    })
  })
}

// listenLoopback starts server on 127.0.0.1:port (0 picks a free port) and
// prints the ready line.
function listenLoopback(name, server, port) {
  server.on('error', (err) => {
    log(name, `listen on 127.0.0.1:${port} failed: ${err.code || ''} ${err.message}`)
    process.exit(err.code === 'EADDRINUSE' ? 98 : 1)
  })
  server.listen(port, '127.0.0.1', () => {
    const p = server.address().port
    log(name, `listening on http://127.0.0.1:${p}`)
    process.stdout.write(`ready ${p}\n`)
  })
}

// freePort asks the kernel for a free loopback port.
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
}

function portArg(args, usage) {
  const port = args.port !== undefined ? args.port : args._[0] !== undefined ? Number(args._[0]) : 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(usage + '\n')
    process.exit(2)
  }
  return port
}

module.exports = { parseArgs, log, installLifecycle, hardenHTTP, listenLoopback, freePort, portArg }
