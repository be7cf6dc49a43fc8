import t from 'tap'
import { createLogger } from '../../src/logger.ts'

t.test('an error logs its command name, never the command arguments ioredis attaches', async (t) => {
  const lines: string[] = []
  const logger = createLogger({ LOG_LEVEL: 'info' }, { write: (line: string) => { lines.push(line) } })
  const error = Object.assign(new Error('OOM command not allowed when used memory > \'maxmemory\'.'), {
    name: 'ReplyError',
    command: { name: 'evalsha', args: ['sha', '1', '{"record":{"email":"someone@example.com"}}'] },
  })
  logger.error({ err: error }, 'enqueue failed')
  const line = JSON.parse(lines[0]!)
  t.same(line.err.command, { name: 'evalsha' })
  t.notMatch(lines[0], 'someone@example.com', 'no row data')
  t.match(line.err.message, /^OOM/)
})
