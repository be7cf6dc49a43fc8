#!/usr/bin/env node
// The `changeflow` command (`npx changeflow <command>`). In a checkout with the development
// dependencies (tsx) it runs the TypeScript sources, as `npm run dev` does, so that it is never
// older than the code beside it; elsewhere (npm ci --omit=dev, the image) it runs the build in
// dist/ (npm run build). The sources run in a child process: only Node's own flag sets the
// `changeflow-source` condition, by which workflows' `import … from 'changeflow'` reach src/.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'

const source = new URL('../src/main/cli.ts', import.meta.url)
const tsx = new URL('../node_modules/tsx/package.json', import.meta.url)
if (existsSync(source) && existsSync(tsx)) {
  const child = spawn(process.execPath, ['--conditions=changeflow-source', '--import', 'tsx', fileURLToPath(source), ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  child.on('error', (error) => { console.error(`changeflow: ${error.message}`); process.exit(1) })
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)))
} else {
  await import(new URL('../dist/src/main/cli.js', import.meta.url).href)
}
