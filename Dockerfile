# schoolgate: one image for the gateway, the admin and the migrations (the command picks which).
#   docker build -t schoolgate .
# Reproducible: a fixed Python release, and every dependency pinned with its hash in
# requirements.lock (./scripts/lock.sh remakes it from pyproject.toml).
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/schoolgate \
 && /opt/schoolgate/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY schoolgate ./schoolgate
RUN /opt/schoolgate/bin/pip install --no-cache-dir --no-deps .

FROM python:3.12.8-slim-bookworm
RUN groupadd --system --gid 10001 schoolgate \
 && useradd --system --uid 10001 --gid schoolgate --home-dir /var/lib/schoolgate \
        --shell /usr/sbin/nologin schoolgate \
 && mkdir -p /var/lib/schoolgate /etc/schoolgate \
 && chown schoolgate:schoolgate /var/lib/schoolgate
COPY --from=build /opt/schoolgate /opt/schoolgate
ENV PATH=/opt/schoolgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SCHOOLGATE_DATA_DIR=/var/lib/schoolgate
USER schoolgate
WORKDIR /var/lib/schoolgate
# The CA, the link-signing secret, the SQLite file (if used) and the event spool live here.
VOLUME ["/var/lib/schoolgate"]
# 8080: proxy (and /proxy.pac, /ca.pem); 8081: admin; 9090: gateway metrics.
EXPOSE 8080 8081 9090
ENTRYPOINT ["schoolgate"]
CMD ["gateway", "--listen-port", "8080"]
