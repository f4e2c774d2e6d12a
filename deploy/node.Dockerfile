# A tinykube node for docker-compose.yml: the release binary on the local
# base image scripts/images.sh builds from Debian's packages (busybox-static,
# iproute2's ip and the host's C libraries). Nothing is pulled: build the
# base first (`bash scripts/images.sh node`) and the binary
# (`cargo build --release -p tinykube`), from the repository's root.
FROM tinykube.local/node:1
# The release build unless told otherwise (the tests copy their debug one).
ARG TINYKUBE_BIN=target/release/tinykube
COPY ${TINYKUBE_BIN} /usr/local/bin/tinykube
# The server's and the agents' state; a volume in docker-compose.yml.
WORKDIR /var/lib/tinykube
CMD ["tinykube", "--help"]
