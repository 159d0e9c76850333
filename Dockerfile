# OnionRP Dock: the production image (engine + plugins + web pages).
#
#   docker build -t onionrp-dock .            (or: docker compose build web)
#
# Stage 1 builds release with the official Swift image; stage 2 is a slim Debian with only the
# runtime libraries, the Swift runtime copied from stage 1, and a non-root user. No secret is baked
# in: tokens and passwords come from the environment at run time (see .env.example).
# Keep this file standard: the test (scripts/deploy-test.sh) builds it unmodified.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------- build
FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends pkg-config libssl-dev libhiredis-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, so that a source change does not fetch them again.
COPY Package.swift ./
COPY Sources/PluginAPI/Package.swift Sources/PluginAPI/
RUN swift package resolve

COPY Sources Sources
COPY Plugins Plugins
# The Swift test targets' folders (the manifest names them; .dockerignore lets only those in, not Tests/integration).
COPY Tests Tests
ARG SWIFT_BUILD_JOBS=""
# The Swift runtime the binaries load (libswiftCore, Foundation, Dispatch, ...) is copied out next to
# them: the plugins are dynamic libraries sharing one runtime, so the standard library is not static.
RUN swift build -c release ${SWIFT_BUILD_JOBS:+--jobs $SWIFT_BUILD_JOBS} \
 && mkdir -p /staging/app/bin /staging/swift \
 && bin="$(swift build -c release --show-bin-path)" \
 && cp "$bin/overlay-engine" "$bin"/lib*.so /staging/app/bin/ \
 && cp -R "$bin"/*.resources /staging/app/bin/ \
 && strip --strip-unneeded /staging/app/bin/overlay-engine /staging/app/bin/*.so \
 && ldd /staging/app/bin/overlay-engine /staging/app/bin/*.so | awk '$3 ~ "^/usr/lib/swift/" { print $3 }' | sort -u \
      | xargs -r cp -L -t /staging/swift/ \
 && if [ -x /usr/libexec/swift/linux/swift-backtrace-static ]; then \
      cp /usr/libexec/swift/linux/swift-backtrace-static /staging/app/bin/; fi

# ---------------------------------------------------------------- runtime
FROM ${RUNTIME_IMAGE}
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libhiredis0.14 libssl3 libyaml-0-2 espeak-ng \
      libstdc++6 libgcc-s1 zlib1g tzdata ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 overlay \
 && useradd --uid 10001 --gid overlay --no-create-home --home-dir /app --shell /usr/sbin/nologin overlay \
 && mkdir -p /app/data /app/uploads \
 && chown overlay:overlay /app/data /app/uploads

COPY --from=build /staging/swift/ /usr/lib/swift/linux/
COPY --from=build /staging/app/bin/ /app/bin/
COPY web /app/web
# The repository's default configuration (embedded store, the engine serves media): enough for a
# lone `docker run -p 8080:8080`. compose.yaml mounts deploy/overlay.yaml over it for the stack.
COPY config/overlay.yaml /app/config/overlay.yaml

WORKDIR /app
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/app/data \
    UPLOADS_DIR=/app/uploads \
    WEB_DIR=/app/web \
    PLUGINS_DIR=/app/bin \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/app/bin/swift-backtrace-static
USER overlay:overlay
VOLUME ["/app/data", "/app/uploads"]
EXPOSE 8080
# The engine closes every socket (1001) and finishes requests in flight on SIGTERM
# (server.shutdown_grace_seconds, 10 s); give it a little more before SIGKILL.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${PORT}/healthz" || exit 1
ENTRYPOINT ["/app/bin/overlay-engine"]
CMD ["serve", "--config", "/app/config/overlay.yaml"]
