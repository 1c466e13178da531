# syntax=docker/dockerfile:1
FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json* ./
RUN npm ci --omit=dev

FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --link <<EOF /app/.npmrc
registry=https://registry.npmjs.org/
EOF
COPY <<-"CONF" <<APP /etc/
	port=${PORT}
	CONF
console.log("hi from $HOSTNAME")
APP
RUN <<EOF
set -e
echo "building in $NODE_ENV"
EOF
RUN python3 <<'PY' > /out.txt
print("stdin")
PY
RUN <<A cat >/a && <<-B cat >/b
a body
A
		b body
	B
ONBUILD RUN <<EOT
echo trigger
EOT
USER node
CMD ["node", "server.js"]
