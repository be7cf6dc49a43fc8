import type { IncomingMessage, Server, ServerResponse } from 'node:http'

export interface Answer { at: number, ms: number | null, status: number }

/** Every webhook request the server got: when, its status, how long it took (null: not answered). */
export function recordAnswers (server: Server): Answer[] {
  const answers: Answer[] = []
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith('/webhooks/')) return
    const answer: Answer = { at: Date.now(), ms: null, status: 0 }
    answers.push(answer)
    res.once('finish', () => {
      answer.ms = Date.now() - answer.at
      answer.status = res.statusCode
    })
  })
  return answers
}
