FROM python:3.12-slim

# legacy ENV form, kept by older official images
ENV LANG C.UTF-8
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=off

RUN set -eux; \
	apt-get update; \
	apt-get install -y --no-install-recommends \
		build-essential \
# libpq for psycopg
		libpq-dev \
	; \
	rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt
COPY . .
LABEL org.opencontainers.image.title="demo app" \
      org.opencontainers.image.description="a \"quoted\" word" version=1.0
VOLUME ["/data", "/logs"]
STOPSIGNAL SIGINT
CMD python -m app --port "${PORT:-8000}"
