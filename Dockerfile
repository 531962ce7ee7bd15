# dmp-fhir: a static binary on distroless, run as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t dmp-fhir .
#   docker run -p 8080:8080 -v dmp-data:/data dmp-fhir                      # embedded engine
#   docker run -p 8080:8080 -v dmp-data:/data -e MONGODB_URI=... dmp-fhir   # MongoDB (replica set)
#
# deploy/compose.yaml runs it against a one-node MongoDB replica set.
# deploy_test.go checks this file: it runs the `go build` line below with the
# same environment and flags.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dmp-fhir .
# The data directory, owned by the user the server runs as (distroless has
# no shell to create it there).
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dmp-fhir /usr/local/bin/dmp-fhir
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# DMP_DATA_DIR holds the embedded database (without MONGODB_URI), and in
# every case the signing key, the registered clients, the audit journal and
# the notification outbox: keep it on a volume.
ENV DMP_ADDR=0.0.0.0:8080 \
    DMP_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
# The image has no shell nor curl: the binary probes its own /readyz.
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 CMD ["/usr/local/bin/dmp-fhir", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dmp-fhir"]
CMD ["serve"]
