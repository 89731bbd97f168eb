# schoolgate: one image for the gateway, the admin and the migrations (the command picks which).
#   docker build -t schoolgate .
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY policy ./policy
COPY proxy_addons ./proxy_addons
COPY store ./store
COPY admin_api ./admin_api
COPY schoolgate ./schoolgate
RUN python -m venv /opt/schoolgate \
 && /opt/schoolgate/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/schoolgate/bin/pip install --no-cache-dir .

FROM python:3.12-slim
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
