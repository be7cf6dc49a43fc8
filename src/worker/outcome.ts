/**
 * Whether a step's failure is its last: attempts spent, or an error that says retrying is
 * useless (BullMQ's UnrecoverableError, or our PermanentError). `attemptsMade` counts the
 * failed attempt.
 */
export function failsForGood (attemptsMade: number, attempts: number, error: unknown): boolean {
  const name = (error as Error | undefined)?.name
  return attemptsMade >= attempts || name === 'UnrecoverableError' || name === 'PermanentError'
}
