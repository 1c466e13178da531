arg REGISTRY=docker.io
arg IMAGE=library/debian TAG
from ${REGISTRY}/${IMAGE}:${TAG:-bookworm} as base
arg VERSION=1.2.3
env APP_HOME=/opt/app \
    ARCHIVE="app-${VERSION}.tar.gz"
workdir $APP_HOME
add --checksum=sha256:0123 https://example.com/releases/${ARCHIVE} ./
run tar -xzf "$ARCHIVE" && rm "$ARCHIVE"
expose ${PORT:-8080}/tcp
label version=$VERSION name=${ARCHIVE%%.tar.gz}
