#!/usr/bin/env node
'use strict'
// SQS emulator (npm package local-aws-sqs) on 127.0.0.1, hardened against client aborts.
// Usage: node deploy/local/sqs.js [port|0] [--detached]
// Prints "ready <port>" on stdout once listening; see launch.js for the protocol.
//
// local-aws-sqs speaks both SQS protocols, the AWS JSON 1.0 one that aws-sdk-go-v2 uses since
// service/sqs v1.28 (2023) and the older query protocol. Queue URLs are built from the port, so
// the port the kernel picked is handed to the service once the server listens.

const http = require('http')
const { parseArgs, installLifecycle, hardenHTTP, listenLoopback, portArg } = require('./launch')
const { createRequestHandler } = require('local-aws-sqs')

const name = 'local-aws-sqs'
const args = parseArgs(process.argv.slice(2))
const port = portArg(args, 'usage: sqs.js [port] [--detached]')

installLifecycle(name, args)

const { requestHandler, service } = createRequestHandler({
  port,
  hostname: '127.0.0.1',
  region: 'us-east-1',
  // A queue deleted by one test may be created again at once by the next.
  emulateQueueCreationLifecycle: false,
})
const server = http.createServer(requestHandler)
server.on('listening', () => {
  service.PORT = server.address().port
})
hardenHTTP(name, server)
listenLoopback(name, server, port)
