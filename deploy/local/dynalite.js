#!/usr/bin/env node
'use strict'
// DynamoDB emulator (dynalite) on 127.0.0.1, hardened against client aborts.
// Usage: node deploy/local/dynalite.js [port|0] [--createTableMs N] [--deleteTableMs N]
//        [--updateTableMs N] [--detached]
// Prints "ready <port>" on stdout once listening; see launch.js for the protocol.

const { parseArgs, installLifecycle, hardenHTTP, listenLoopback, portArg } = require('./launch')

const name = 'dynalite'
const args = parseArgs(process.argv.slice(2))
const port = portArg(args, 'usage: dynalite.js [port] [--createTableMs N] [--deleteTableMs N] [--updateTableMs N] [--detached]')

installLifecycle(name, args)

const opts = {
  createTableMs: args.createTableMs !== undefined ? args.createTableMs : 0,
  deleteTableMs: args.deleteTableMs !== undefined ? args.deleteTableMs : 0,
  updateTableMs: args.updateTableMs !== undefined ? args.updateTableMs : 0,
}
const server = require('dynalite')(opts)
hardenHTTP(name, server)
listenLoopback(name, server, port)
