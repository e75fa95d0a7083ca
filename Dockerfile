# Build stage: the only stage with a compiler. `npm ci` builds the native modules
# (better-sqlite3, msgpackr-extract) and the TypeScript, then the dev dependencies go, so
# /app/node_modules is exactly what the runtime needs, already compiled.
# Both stages use the same pinned image, so the modules built here match the runtime's Node ABI.
FROM node:22.23.3-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
COPY bin ./bin
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: no compiler, no install; compiled code and pruned modules from the build stage, non-root user.
FROM node:22.23.3-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MIRROR_DB_PATH=/data/mirror.db
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/migrations ./migrations
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# Exec form: node receives SIGTERM itself. Compose adds an init (`init: true`) as PID 1; without
# one node is PID 1 and the binary handles SIGTERM and SIGINT itself (PID 1 has no default handlers).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/clerk-invitation-mirror.js"]
CMD ["start"]
