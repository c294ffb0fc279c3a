# syntax=docker/dockerfile:1
# The govcloud operator image: `docker build -t govcloud-operator .`
# Two stages: the first installs the package and its dependencies into a virtualenv, the
# second copies only that virtualenv onto a fresh slim Python and runs it as a non-root user.
# No compiler, pip or build cache reaches the final image; every dependency is a wheel.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/govcloud
WORKDIR /src
# Only what `pip install .` needs: the project metadata and the package itself.
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/govcloud/bin/pip install --no-compile . \
 && /opt/govcloud/bin/python -m compileall -q /opt/govcloud/lib \
 && /opt/govcloud/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/govcloud/bin/govcloud-operator --version

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="govcloud-operator" \
      org.opencontainers.image.description="Kubernetes operator for a city's unified government cloud" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/govcloud/govcloud-operator"
# The user the chart runs as (runAsUser/runAsGroup 10001); a passwd entry keeps tools that
# look the user up (getpass) working. pip and setuptools of the base image go too.
RUN groupadd --system --gid 10001 govcloud \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin govcloud \
 && rm -rf /usr/local/lib/python3.11/site-packages/pip /usr/local/lib/python3.11/site-packages/setuptools \
      /usr/local/bin/pip* /root/.cache
COPY --from=build /opt/govcloud /opt/govcloud
ENV PATH=/opt/govcloud/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# 8080: /metrics, 8081: /healthz (kopf liveness).
EXPOSE 8080 8081
ENTRYPOINT ["govcloud-operator"]
