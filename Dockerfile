# The pipeline image: the library as a wheel, the example application's
# modules beside it, run as a non-root user with a read-only root filesystem
# in mind (the one writable place is /var/cache/pipeline: table caches).
#
#   docker build -t registry.example/pipeline:0.1.0 .
#   docker run --rm registry.example/pipeline:0.1.0 worker enrich_orders --health-port 8081
#
# Your own application: build with APP=path/to/your/modules (its topic
# catalogue and processors modules, named by PIPELINE_CATALOGUE_MODULE and
# PIPELINE_PROCESSORS_MODULE).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the wheel, with the build tools only this stage has -------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir "build>=1.2,<2"
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
RUN python -m build --wheel --outdir /dist

# -- run: the wheel and the application, no compilers ------------------------
FROM ${PYTHON_IMAGE}
ARG APP=.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIPELINE_STATE_DIR=/var/cache/pipeline \
    PIPELINE_LOG_FORMAT=json
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app pipeline \
    && mkdir -p /var/cache/pipeline /app \
    && chown 10001:10001 /var/cache/pipeline
COPY --from=build /dist/ /tmp/dist/
# Binary wheels only: nothing is compiled, so the image needs no compiler.
RUN python -m pip install --only-binary=:all: /tmp/dist/*.whl && rm -rf /tmp/dist
COPY ${APP}/topics /app/topics
COPY ${APP}/consumers /app/consumers
WORKDIR /app
USER 10001:10001
VOLUME ["/var/cache/pipeline"]
EXPOSE 8081 8080
ENTRYPOINT ["pipeline"]
CMD ["--help"]
