import { runCli } from '../cli/program.ts'

/** `changeflow`: the process side only (environment, streams, exit code); see cli/program.ts. */
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  stdin: process.stdin,
  progress: process.stderr,
})
