#!/usr/bin/env node
'use strict'
// Kinesis emulator (kinesalite) on 127.0.0.1, hardened against client aborts.
// Usage: node deploy/local/kinesalite.js [port|0] [--shardLimit N] [--createStreamMs N]
//        [--deleteStreamMs N] [--updateStreamMs N] [--detached]
// Prints "ready <port>" on stdout once listening; see launch.js for the protocol.

const { parseArgs, installLifecycle, hardenHTTP, listenLoopback, portArg } = require('./launch')

const name = 'kinesalite'
const args = parseArgs(process.argv.slice(2))
const port = portArg(args, 'usage: kinesalite.js [port] [--shardLimit N] [--createStreamMs N] [--deleteStreamMs N] [--updateStreamMs N] [--detached]')

installLifecycle(name, args)

const opts = {
  shardLimit: args.shardLimit !== undefined ? args.shardLimit : 1000,
  createStreamMs: args.createStreamMs !== undefined ? args.createStreamMs : 0,
  deleteStreamMs: args.deleteStreamMs !== undefined ? args.deleteStreamMs : 0,
  updateStreamMs: args.updateStreamMs !== undefined ? args.updateStreamMs : 0,
}
const server = require('kinesalite')(opts)
hardenHTTP(name, server)
listenLoopback(name, server, port)
