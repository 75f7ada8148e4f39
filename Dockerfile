# The inferbudget operator.
#
#   buildah bud -t inferbudget .          (or docker build; python3 hack/image/image.py build without a registry)
#
# Two stages: the first installs the package and its dependencies into a virtualenv; the final one is the
# plain base image plus that virtualenv, run as a non-root user, with no pip, compiler or package cache.
# BASE_IMAGE may be any image with python3 (3.11 or newer) and its venv module; hack/image/image.py passes a
# Debian base it bootstraps locally, for machines that cannot reach a container registry.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/inferbudget
# The dependencies first, read from pyproject.toml: a layer that survives changes to the source.
COPY pyproject.toml /src/
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt \
 && /opt/inferbudget/bin/pip install --no-compile --requirement /tmp/requirements.txt
COPY README.md /src/
COPY operator /src/operator
# Then the package itself (a copy, not editable), compiled ahead (the root filesystem will be read-only),
# without the dependencies' own test suites; then the installers go: the final stage needs none of them.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/inferbudget/bin/pip install --no-compile --no-deps /src \
 && find /opt/inferbudget/lib -depth -type d -name tests -exec rm -rf {} + \
 && /opt/inferbudget/bin/python -m compileall -q /opt/inferbudget/lib \
 && /opt/inferbudget/bin/pip uninstall --yes pip setuptools \
 && /opt/inferbudget/bin/inferbudget --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="inferbudget" \
      org.opencontainers.image.description="Kubernetes operator keeping served models within latency, memory and cost budgets" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric id, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 65532 inferbudget \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin inferbudget
COPY --from=build /opt/inferbudget /opt/inferbudget
ENV PATH=/opt/inferbudget/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: the operator's /metrics; 8081: kopf's liveness endpoint /healthz
EXPOSE 8080 8081
ENTRYPOINT ["inferbudget", "run"]
