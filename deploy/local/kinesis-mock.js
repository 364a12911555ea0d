#!/usr/bin/env node
'use strict'
// Kinesis emulator (kinesis-mock, npm package kinesis-local) on 127.0.0.1.
// Usage: node deploy/local/kinesis-mock.js [port|0] [--shardLimit N] [--durationMs N] [--detached]
// Prints "ready <port>" on stdout once the plain-HTTP port listens; see launch.js
// for the protocol. kinesis-mock has the full Kinesis API (UpdateShardCount,
// real MillisBehindLatest) but is roughly ten times slower than kinesalite.
//
// kinesis-mock is configured only through the environment and binds every
// interface on a plain port and a TLS port. This launcher sets the environment
// (unless the caller already did), gives the unused TLS endpoint a
// kernel-chosen port, and runs the bundled server as a child process with
// kinesis-mock-preload.js, which pins it to 127.0.0.1. The server runs in a
// child because its runtime takes over signal handling and process exit: this
// supervisor stays in charge and SIGKILLs it on SIGTERM or stdin EOF.

const path = require('path')
const { spawn } = require('child_process')
const { parseArgs, log, installLifecycle, freePort, portArg } = require('./launch')

const name = 'kinesis-mock'
const args = parseArgs(process.argv.slice(2))
const requested = portArg(args, 'usage: kinesis-mock.js [port] [--shardLimit N] [--durationMs N] [--detached]')

let child = null
installLifecycle(name, args, () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
})

async function main() {
  const pkgDir = path.dirname(require.resolve('kinesis-local/package.json'))
  const port = requested === 0 ? await freePort() : requested
  const ms = args.durationMs !== undefined ? args.durationMs : 10
  const env = Object.assign({}, process.env)
  const defaults = {
    KINESIS_MOCK_CERT_PATH: path.join(pkgDir, 'server.json'),
    KINESIS_MOCK_PLAIN_PORT: String(port),
    KINESIS_MOCK_TLS_PORT: '0',
    SHARD_LIMIT: String(args.shardLimit !== undefined ? args.shardLimit : 1000),
    ON_DEMAND_STREAM_COUNT_LIMIT: '1000',
    AWS_REGION: 'us-east-1',
    LOG_LEVEL: 'ERROR',
  }
  for (const v of ['CREATE_STREAM', 'DELETE_STREAM', 'REGISTER_STREAM_CONSUMER', 'DEREGISTER_STREAM_CONSUMER',
    'START_STREAM_ENCRYPTION', 'STOP_STREAM_ENCRYPTION', 'MERGE_SHARDS', 'SPLIT_SHARD', 'UPDATE_SHARD_COUNT',
    'UPDATE_STREAM_MODE']) {
    defaults[v + '_DURATION'] = `${ms}ms`
  }
  for (const [k, v] of Object.entries(defaults)) {
    if (env[k] === undefined) env[k] = v
  }
  if (!/^[1-9]\d*$/.test(env.KINESIS_MOCK_PLAIN_PORT)) {
    throw new Error(`KINESIS_MOCK_PLAIN_PORT=${env.KINESIS_MOCK_PLAIN_PORT}: want a concrete port`)
  }

  child = spawn(process.execPath, ['--require', path.join(__dirname, 'kinesis-mock-preload.js'), path.join(pkgDir, 'main.js')], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  child.on('error', (err) => {
    log(name, `start server: ${err.message}`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    log(name, `server exited (code ${code}, signal ${signal})`)
    process.exit(code === null ? 1 : code)
  })
}

main().catch((err) => {
  log(name, `start failed: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
