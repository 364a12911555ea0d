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
// Requests in CBOR (application/x-amz-cbor-1.1, how the forwarder sends PutRecords), mended:
// - kinesalite decodes and encodes CBOR with the cbor package, whose Encoder.encodeOne returns only
//   what fits its stream's high-water mark, 16 KiB: a PutRecords answer for 500 records (about
//   40 KiB) came back cut short. And its decoder, a stream in JavaScript, made kinesalite spend 7 %
//   more CPU on a CBOR call than on the same call in JSON, where JSON.parse is native. cbor-x (a
//   plain-function codec) does both here, whole answers included.
// - It keeps a record's Data as it was decoded, a Buffer from CBOR, and stores it as JSON, where a
//   Buffer is written {"type":"Buffer","data":[...]}: the workers' GetRecords then got that object
//   instead of base64. A Buffer is written in JSON as its base64 text here, as a JSON request
//   carries it. (A CBOR GetRecords would then get Data as text; nothing here reads in CBOR.)
const cbor = require(require.resolve('cbor', { paths: [require.resolve('kinesalite')] }))
const cborx = require('cbor-x')
cbor.Decoder.decodeFirstSync = (body) => cborx.decode(body)
cbor.Encoder.encodeOne = (obj) => cborx.encode(obj)
Buffer.prototype.toJSON = function () { return this.toString('base64') }

const server = require('kinesalite')(opts)
hardenHTTP(name, server)
listenLoopback(name, server, port)
