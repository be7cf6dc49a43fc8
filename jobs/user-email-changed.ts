import { defineWorkflow } from 'changeflow'
import { effects } from './lib/effects.ts'

/** A changed email address must be verified: the new address gets a verification email. */
export default defineWorkflow({
  name: 'user-email-changed',
  table: 'users',
  on: ['update'],
  when: (change) => change.changed('email'),
  steps: [
    {
      name: 'send-verification-email',
      run: ({ change, idempotencyKey, log }) => effects().sendEmail({
        to: String(change.record.email),
        template: 'verify-email',
        data: { userId: change.record.id },
        idempotencyKey,
      }, log),
    },
  ],
})
