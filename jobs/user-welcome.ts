import { defineWorkflow } from 'changeflow'
import { effects } from './lib/effects.ts'

/** A new user gets a welcome email. Backfill (`read`) rows are existing users: not listed. */
export default defineWorkflow({
  name: 'user-welcome',
  table: 'users',
  on: ['insert'],
  steps: [
    {
      name: 'send-welcome-email',
      run: ({ change, idempotencyKey, log }) => effects().sendEmail({
        to: String(change.record.email),
        template: 'welcome',
        data: { name: change.record.full_name },
        idempotencyKey,
      }, log),
    },
  ],
})
