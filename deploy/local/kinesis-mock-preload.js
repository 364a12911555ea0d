'use strict'
// Preloaded (node --require) into the kinesis-mock server process started by
// kinesis-mock.js. It pins every listen call to 127.0.0.1, guards the accept
// loop against clients that reset straight after connecting, and prints the
// launcher protocol's "ready <port>" line when the plain-HTTP port listens.
// KINESIS_MOCK_PLAIN_PORT must be a concrete port (not 0): it is how the plain
// server is told from the TLS one.

const net = require('net')

const plain = Number(process.env.KINESIS_MOCK_PLAIN_PORT)
const log = (msg) => process.stderr.write(`${new Date().toISOString()} [kinesis-mock] ${msg}\n`)

// guardConnections protects kinesis-mock's accept loop. Its server stream
// reads each new socket's peer address later, asynchronously; a client that
// resets right after connecting (a killed worker) leaves no address, and that
// failure ends the whole server: the process lives on with its listener
// closed. Reading the address at accept time makes Node cache it for the
// socket's life; a socket already dead by then is dropped before the server
// sees it.
function guardConnections(server) {
  const emit = server.emit
  server.emit = function (event, ...a) {
    if (event === 'connection') {
      const socket = a[0]
      if (socket.destroyed || !socket.remoteAddress || !socket.remotePort) {
        socket.destroy()
        return false
      }
      socket.on('error', () => {})
    }
    return emit.call(this, event, ...a)
  }
}

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...a) {
  let p
  if (typeof a[0] === 'number' || (typeof a[0] === 'string' && /^\d+$/.test(a[0]))) {
    p = Number(a[0])
    if (typeof a[1] !== 'string') a.splice(1, 0, '127.0.0.1')
    else a[1] = '127.0.0.1'
  } else if (a[0] && typeof a[0] === 'object' && a[0].port !== undefined) {
    p = Number(a[0].port)
    a[0] = Object.assign({}, a[0], { host: '127.0.0.1' })
  }
  guardConnections(this)
  if (p === plain) {
    this.once('listening', () => {
      log(`listening on http://127.0.0.1:${plain}`)
      process.stdout.write(`ready ${plain}\n`)
    })
  }
  this.on('error', (err) => {
    log(`listen on 127.0.0.1:${p} failed: ${err.code || ''} ${err.message}`)
    process.exit(err.code === 'EADDRINUSE' ? 98 : 1)
  })
  return listen.apply(this, a)
}
