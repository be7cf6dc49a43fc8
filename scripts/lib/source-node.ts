/**
 * Node's arguments for running the TypeScript sources, as `npm run dev` does: tsx, and the
 * `changeflow-source` condition, so that workflows' `import … from 'changeflow'` reaches src/
 * (without it, package.json's `exports` send it to the build in dist/).
 */
export const SOURCE_NODE_ARGS = ['--conditions=changeflow-source', '--import', 'tsx']
