import type { Command } from 'commander'
import { isSuccess, postBody, serviceUrl, statusLine, webhookToken, WEBHOOK_PATH } from './http.ts'
import { EXIT, type Session } from './session.ts'

/** `send <file|->`: one Sequin body to the webhook, as Sequin would post it. */
export function registerSend (program: Command, session: Session): void {
  program.command('send')
    .description('post a Sequin body (a file, or - for standard input) to the webhook with the configured token; print the answer')
    .argument('<file>', 'a JSON body as Sequin sends it (batched {"data": [...]} or one message), or - to read standard input')
    .option('--url <url>', 'the service (http://host:port) or its webhook URL', undefined)
    .option('--json', 'print {"status", "body"} as one JSON object')
    .addHelpText('after', `
The token is the first of SEQUIN_WEBHOOK_TOKENS or, outside production, the development token
npm start keeps in DATA_DIR/webhook-token. Exit code 0 on a 2xx answer, 1 otherwise.

Example:
  changeflow send test/fixtures/batch-orders-update-paid.json`)
    .action((file: string, options: { url?: string, json?: boolean }) => session.run(async () => {
      const url = serviceUrl(session, options.url, WEBHOOK_PATH)
      const text = await session.readInput(file)
      const answer = await postBody(url, await webhookToken(session), text)
      if (options.json) session.json(answer)
      else {
        session.out(statusLine(answer.status))
        session.out(typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body))
      }
      return isSuccess(answer.status) ? EXIT.ok : EXIT.failed
    }))
}
