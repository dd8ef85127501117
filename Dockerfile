# mdsdx service image: gunicorn serving the Flask app with the shipped models.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MDSDX_HOME=/var/lib/mdsdx \
    OMP_WAIT_POLICY=PASSIVE

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 mdsdx \
 && mkdir -p /var/lib/mdsdx && chown mdsdx:mdsdx /var/lib/mdsdx

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY core ./core
COPY models ./models
COPY featurize ./featurize
COPY diagnose ./diagnose
COPY simulate ./simulate
COPY service ./service
COPY cli ./cli
RUN pip install --no-cache-dir .

USER mdsdx
EXPOSE 8000
VOLUME ["/var/lib/mdsdx"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
# `mdsdx serve` initialises the data volume (schema, first admin key printed to the log, example
# smears) and then execs gunicorn with service/gunicorn_conf.py, so gunicorn is PID 1.
ENTRYPOINT ["mdsdx", "serve", "--host", "0.0.0.0", "--port", "8000"]
