# syntax=docker/dockerfile:1
# A standalone binary built with `deno compile`, run on a minimal base as a
# non-root user.
#
#   docker build -t dtls-server .
#   docker run --rm -p 4433:4433/udp -v "$PWD/keys:/etc/dtls-server:ro" dtls-server
#
# `docker stop` sends SIGTERM to the server itself (exec-form ENTRYPOINT, PID 1),
# which sends close_notify to every peer before exiting.

FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY src ./src
RUN deno install --frozen --entrypoint main.ts
RUN deno compile --frozen --unstable-net --allow-net --allow-read --allow-env \
      --output /out/dtls-server main.ts

# distroless/cc has the glibc the compiled binary links against, and nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/dtls-server /usr/local/bin/dtls-server
USER nonroot:nonroot
ENV DTLS_SERVER_ADDRESS=0.0.0.0 \
    DTLS_SERVER_PORT=4433 \
    DTLS_SERVER_PSK_FILE=/etc/dtls-server/keys.psk \
    DTLS_SERVER_METRICS=127.0.0.1:9464
VOLUME ["/etc/dtls-server"]
EXPOSE 4433/udp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/dtls-server", "health", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["/usr/local/bin/dtls-server"]
