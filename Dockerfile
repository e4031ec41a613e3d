# Multi-stage build of chatd on Debian 12. The runtime image carries Mesa's Vulkan
# driver (lavapipe) so the Vulkan backend works without a GPU.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/setup.sh scripts/setup.sh
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev \
        libvulkan-dev glslc libcurl4-openssl-dev libpcre2-dev libsodium-dev libinih-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)" --target chatd

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        libmicrohttpd12 libjansson4 libsqlite3-0 libvulkan1 mesa-vulkan-drivers libcurl4 \
        libpcre2-8-0 libsodium23 libinih1 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/chatd /usr/local/bin/chatd
VOLUME ["/data"]
ENV CHATD_DB=/data/chatd.db CHATD_MODEL_DIR=/data/models CHATD_HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fs http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["chatd"]
CMD ["serve"]
