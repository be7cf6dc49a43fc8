// What workflows import: `import { defineWorkflow } from 'changeflow'` (package.json `exports`:
// these sources under tsx and the type-checker, dist/src/index.js once built).
export { defineWorkflow, PermanentError } from './workflows/define.ts'
export type { Backoff, Results, Step, StepContext, Workflow } from './workflows/define.ts'
export type { StepResult, TypedSteps, TypedWorkflow } from './workflows/typed.ts'
export type { Change } from './workflows/change.ts'
