FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts
COPY bin ./bin
COPY src ./src
COPY api ./api
COPY schema ./schema
COPY tsconfig.json ./
USER node
EXPOSE 4000
ENTRYPOINT ["node", "bin/matview.js"]
CMD ["serve"]
