# changeflow's image: `docker build -t changeflow .` compiles the service and the workflows in
# jobs/ (yours: edit them, or replace the folder, before building) into dist/; the runtime stage
# holds the production dependencies and that build, nothing else. One image for both process
# types: the command chooses (the default is the webhook; `node dist/src/main/worker.js` runs
# the steps). See the README's Deployment section and compose.yaml.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY routes ./routes
COPY jobs ./jobs
RUN npm run build

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The node image's unprivileged user; nothing under /app is written at run time in production.
USER node
EXPOSE 3000
# Liveness, written with node (the slim image has no curl): /healthz on METRICS_PORT when set
# (a worker serves HTTP only there), else on PORT. Readiness is /readyz (compose.yaml probes it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.METRICS_PORT || process.env.PORT || 3000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1 (exec form, no npm or shell in between): SIGTERM reaches the service itself.
CMD ["node", "dist/src/main/web.js"]
