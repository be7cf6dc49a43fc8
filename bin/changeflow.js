#!/usr/bin/env node
// The `changeflow` command (`npx changeflow <command>`). It runs the TypeScript sources through
// tsx, as `npm start` does today; once production runs a compiled dist/, import that build's
// src/main/cli.js here instead and drop the register call.
import { register } from 'tsx/esm/api'

register()
await import('../src/main/cli.ts')
