#!/usr/bin/env node
'use strict'
// Kinesis emulator (kinesis-mock, npm package kinesis-local) on 127.0.0.1.
// Usage: node deploy/local/kinesis-mock.js [port|0] [--shardLimit N] [--durationMs N] [--detached]
// Prints "ready <port>" on stdout once the plain-HTTP port listens; see launch.js
// for the protocol. kinesis-mock has the full Kinesis API (UpdateShardCount,
// real MillisBehindLatest) but is roughly ten times slower than kinesalite.
//
// kinesis-mock is configured only through the environment and always binds
// every interface on a plain port and a TLS port. This launcher sets the
// environment (unless the caller already did), gives the unused TLS endpoint a
// kernel-chosen port, and rewrites its listen calls to 127.0.0.1 before
// loading the bundled server in this same process.

const net = require('net')
const path = require('path')
const { parseArgs, log, installLifecycle, freePort, portArg } = require('./launch')

const name = 'kinesis-mock'
const args = parseArgs(process.argv.slice(2))
const requested = portArg(args, 'usage: kinesis-mock.js [port] [--shardLimit N] [--durationMs N] [--detached]')

installLifecycle(name, args)

async function main() {
  const pkgDir = path.dirname(require.resolve('kinesis-local/package.json'))
  // The plain port must be concrete: it is how the listen hook below tells the
  // plain server from the TLS one.
  const port = requested === 0 ? await freePort() : requested
  const ms = args.durationMs !== undefined ? args.durationMs : 10
  const defaults = {
    KINESIS_MOCK_CERT_PATH: path.join(pkgDir, 'server.json'),
    KINESIS_MOCK_PLAIN_PORT: String(port),
    KINESIS_MOCK_TLS_PORT: '0',
    SHARD_LIMIT: String(args.shardLimit !== undefined ? args.shardLimit : 1000),
    ON_DEMAND_STREAM_COUNT_LIMIT: '1000',
    AWS_REGION: 'us-east-1',
    LOG_LEVEL: 'WARN',
  }
  for (const v of ['CREATE_STREAM', 'DELETE_STREAM', 'REGISTER_STREAM_CONSUMER', 'DEREGISTER_STREAM_CONSUMER',
    'START_STREAM_ENCRYPTION', 'STOP_STREAM_ENCRYPTION', 'MERGE_SHARDS', 'SPLIT_SHARD', 'UPDATE_SHARD_COUNT',
    'UPDATE_STREAM_MODE']) {
    defaults[v + '_DURATION'] = `${ms}ms`
  }
  for (const [k, v] of Object.entries(defaults)) {
    if (process.env[k] === undefined) process.env[k] = v
  }
  const plain = Number(process.env.KINESIS_MOCK_PLAIN_PORT)

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
    if (p === plain) {
      this.once('listening', () => {
        log(name, `listening on http://127.0.0.1:${plain}`)
        process.stdout.write(`ready ${plain}\n`)
      })
    }
    this.on('error', (err) => {
      log(name, `listen on 127.0.0.1:${p} failed: ${err.code || ''} ${err.message}`)
      process.exit(err.code === 'EADDRINUSE' ? 98 : 1)
    })
    return listen.apply(this, a)
  }
  require('kinesis-local/main.js')
}

main().catch((err) => {
  log(name, `start failed: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
