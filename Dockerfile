FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# A larger young generation: a fan-out to thousands of subscribers makes short-lived garbage in bursts,
# and fewer scavenges cut its GC time by about a third (bench/README.md, fan-out). Costs up to ~200 MB.
ENV NODE_OPTIONS=--max-semi-space-size=64
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts
COPY bin ./bin
COPY src ./src
COPY api ./api
COPY schema ./schema
COPY tsconfig.json ./
COPY scripts/build.mjs ./scripts/
# The bundle bin/matview.js runs (the image's files are read-only to the node user, so build it now).
RUN node scripts/build.mjs
USER node
EXPOSE 4000
ENTRYPOINT ["node", "bin/matview.js"]
CMD ["serve"]
