# syntax=docker/dockerfile:1.7
# check=skip=StageNameCasing

ARG GO_VERSION=1.22
ARG ALPINE=3.19

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS Build
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    --mount=type=bind,source=go.mod,target=go.mod \
    go mod download -x
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,target=. \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /bin/server ./cmd/server

FROM alpine:${ALPINE} AS final
RUN --network=none apk --no-cache add ca-certificates tzdata \
 && adduser -D -H -u 10001 appuser
USER appuser
COPY --from=build --chown=10001:10001 --chmod=0755 /bin/server /bin/
EXPOSE 8080/tcp 9090
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 \
  CMD ["/bin/server", "-healthcheck"]
ENTRYPOINT [ "/bin/server" ]
