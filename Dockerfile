# syntax=docker/dockerfile:1
# prober's production image: `make image` builds it (docker build), the Helm chart in
# helm/prober runs it. Two stages: the first installs prober and its dependencies into a
# virtual environment (wheels only: every dependency ships one for linux/amd64 and arm64);
# the second copies that environment onto a fresh slim base with no pip, no compiler and
# no package manager caches. It runs as the numeric user 10001 and writes only to
# /var/lib/prober (the state file: mount a volume) and /tmp (mount an emptyDir), so the
# root filesystem can be read-only.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all:
WORKDIR /src
COPY pyproject.toml README.md ./
COPY prober ./prober
COPY slo ./slo
# setuptools builds prober's own wheel (the only source build, pure Python); everything
# else installs from wheels. pip and setuptools leave the environment the image ships, and
# the bytecode is compiled here because the running container cannot write it.
RUN python -m venv /opt/prober \
    && /opt/prober/bin/pip install --no-binary=prober --only-binary=:all: . \
    && /opt/prober/bin/pip uninstall --yes setuptools pip \
    && /opt/prober/bin/python -m compileall -q /opt/prober/lib \
    && /opt/prober/bin/prober --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="prober" \
      org.opencontainers.image.description="Synthetic journey probing and SLO evaluation daemon: scripted user journeys, error budgets, multi-window burn rates, Prometheus metrics and alerts." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --system --gid 10001 prober \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/prober --shell /usr/sbin/nologin prober \
    && mkdir -p /var/lib/prober /etc/prober \
    && chown 10001:10001 /var/lib/prober
COPY --from=build /opt/prober /opt/prober
ENV PATH=/opt/prober/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
WORKDIR /var/lib/prober
USER 10001:10001
EXPOSE 9469
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9469/healthz', timeout=2)"]
ENTRYPOINT ["prober"]
CMD ["run", "--config", "/etc/prober/prober.yaml", "--state", "/var/lib/prober/prober-state.db"]
