#!/usr/bin/env bash
# Builds the local container images the examples and the tests of the
# `docker` runtime use, from Debian's packages alone: no registry is asked
# for anything.
#
#   tinykube.local/busybox:<version>, alias :1   Debian's busybox-static
#   tinykube.local/python:<version>, alias :3    debootstrap minbase + python3
#   tinykube.local/node:<version>, alias :1      busybox-static + iproute2's ip
#                                                and the host's C libraries:
#                                                the base of docker-compose.yml's
#                                                nodes (deploy/node.Dockerfile)
#
# The busybox and Python images are only for machines that cannot reach a
# registry (CI runners, air-gapped hosts). Real users pull their images
# from their registry as usual. The node image is built here everywhere:
# it carries this host's libraries for a binary built on this host. The `tinykube.local/` names and non-latest tags keep
# a pod with imagePullPolicy IfNotPresent (the default for such a tag) from
# pulling anything while the images are present.
#
#   bash scripts/images.sh [--force] [busybox] [python] [node]
#
# An image whose tags already exist is left alone unless --force is given.
# Needs root and a running Docker Engine; installs busybox-static,
# iproute2 and debootstrap with apt-get when they are missing. Environment:
#   TINYKUBE_DEBIAN_MIRROR   the mirror debootstrap uses (default: the one
#                            apt is configured with, else deb.debian.org)
#   TINYKUBE_DEBIAN_SUITE    the Debian release of the Python image
#                            (default: bookworm)
set -euo pipefail

prog=scripts/images.sh
label=tinykube.local.image.version
suite=${TINYKUBE_DEBIAN_SUITE:-bookworm}
default_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

usage() {
  sed -n '/^#   bash/p' "$0" | sed 's/^#   //'
  echo "Builds the local images tinykube.local/busybox, tinykube.local/python and tinykube.local/node."
}

force=0
want=()
for arg in "$@"; do
  case $arg in
    --force | -f) force=1 ;;
    -h | --help) usage; exit 0 ;;
    busybox | python | node) want+=("$arg") ;;
    *) usage >&2; die "unknown argument: $arg" ;;
  esac
done
((${#want[@]})) || want=(busybox python node)

command -v docker >/dev/null ||
  die "no docker CLI on the PATH (Debian: apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "the Docker Engine does not answer ('docker version' shows no server): is dockerd running, and may this user use its socket?"

work=
child=
# Stops the process group of a running debootstrap (dpkg and all).
stop_child() {
  [[ -n $child ]] || return 0
  kill -TERM -- "-$child" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 -- "-$child" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL -- "-$child" 2>/dev/null || true
  wait "$child" 2>/dev/null || true
  child=
}
cleanup() {
  stop_child
  [[ -n $work && -d $work ]] || return 0
  # debootstrap mounts /proc and /sys inside its target while it runs; if
  # it was interrupted, unmount them before deleting, never delete through.
  local m
  awk -v w="$work" '$2 == w || index($2, w "/") == 1 { print $2 }' /proc/self/mounts |
    sort -r | while read -r m; do umount -l "$m" || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

workdir() {
  if [[ -z $work ]]; then
    # Not /tmp: a tmpfs /tmp may be small or mounted noexec/nodev.
    work=$(mktemp -d "${TMPDIR:-/var/tmp}/tinykube-images.XXXXXX")
    work=$(realpath "$work")
  fi
}

need_root() {
  ((EUID == 0)) || die "building $1 needs root ($2); run: sudo bash $prog"
}

# Installs the Debian packages given that are not installed yet.
apt_need() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them (this script expects Debian)"
  say "installing ${missing[*]} with apt-get"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
}

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

# True when REPO:ALIAS exists and so does REPO:<the version it was built
# with>; re-creates only the versioned tag if that one alone was removed.
present() {
  local repo=$1 alias=$2 version
  has_image "$repo:$alias" || return 1
  version=$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$repo:$alias" 2>/dev/null) || return 1
  [[ -n $version && $version != "<no value>" ]] || return 1
  has_image "$repo:$version" || docker tag "$repo:$alias" "$repo:$version"
}

# import ROOTFS REPO VERSION ALIAS TEST-COMMAND... [-- DOCKER-IMPORT-ARGS...]
# Imports a root file system, checks the image with TEST-COMMAND, then
# tags it REPO:VERSION and REPO:ALIAS. A broken image is never tagged.
import() {
  local root=$1 repo=$2 version=$3 alias=$4 id old
  shift 4
  local test=() changes=()
  while (($#)) && [[ $1 != -- ]]; do test+=("$1"); shift; done
  (($#)) && shift
  changes=("$@")
  id=$(tar -C "$root" -c --numeric-owner --owner=0 --group=0 \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' . |
    docker import "${changes[@]}" --change "LABEL $label=$version" -) ||
    die "docker import of $repo failed"
  if ! docker run --rm --network none "$id" "${test[@]}" >&2; then
    docker rmi "$id" >/dev/null 2>&1 || true
    die "the new $repo image failed its check: ${test[*]}"
  fi
  old=$(docker image inspect -f '{{.Id}}' "$repo:$alias" 2>/dev/null || true)
  docker tag "$id" "$repo:$version"
  docker tag "$id" "$repo:$alias"
  # The image --force replaced, unless another tag or a container uses it.
  [[ -z $old || $old == "$id" ]] || docker rmi "$old" >/dev/null 2>&1 || true
}

# The upstream part of an installed Debian package's version:
# 1:1.35.0-4+deb12u1 -> 1.35.0.
upstream_version() {
  local v
  v=$(dpkg-query -W -f='${Version}' "$1")
  v=${v#*:}
  v=${v%%-*}
  v=${v%%[+~]*}
  [[ $v =~ ^[0-9][0-9.]*$ ]] || die "cannot read $1's version from $(dpkg-query -W -f='${Version}' "$1")"
  echo "$v"
}

# busybox_root ROOT: a root file system of Debian's static busybox, with
# each applet at its usual place, and the users root and nobody.
busybox_root() {
  local root=$1
  [[ -n $root && $(realpath -m "$root") != / ]] || die "busybox_root: refusing to build in '$root'"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev}
  install -m 0755 /bin/busybox "$root/bin/busybox"
  # Absolute symlinks /bin/sh -> /bin/busybox etc., at each applet's usual
  # place. In a chroot busybox takes its own path from argv[0].
  chroot "$root" /bin/busybox --install -s ||
    die "busybox --install failed (is /bin/busybox the static busybox-static one?)"
  rm -f "$root/linuxrc"
  [[ -L $root/bin/sh && -L $root/usr/bin/wget ]] || die "busybox --install made no /bin/sh or /usr/bin/wget"
  # Replace, never write through: a symlink or hard link left here must not
  # carry the writes onto the host's own files.
  rm -f "$root/etc/passwd" "$root/etc/group"
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
  chmod 0700 "$root/root"
  chmod 1777 "$root/tmp"
}

build_busybox() {
  local repo=tinykube.local/busybox alias=1 version root
  if ((!force)) && present "$repo" "$alias"; then
    say "$repo:$alias is present (--force rebuilds it)"
    return
  fi
  need_root "$repo" "apt-get and chroot"
  # The static build: the image has no libc for a dynamic one to load.
  apt_need busybox-static
  version=$(upstream_version busybox-static)
  say "building $repo:$version from Debian's busybox-static"

  workdir
  root=$work/busybox
  busybox_root "$root"

  # shellcheck disable=SC2016 # expanded by the image's sh
  import "$root" "$repo" "$version" "$alias" \
    sh -c 'httpd -h /etc -p 127.0.0.1:8080 && wget -qO- http://127.0.0.1:8080/passwd | grep -q "^nobody:x:65534:" &&
           (echo hi | nc -l -p 9000 >/dev/null &) && sleep 0.2 && nc 127.0.0.1 9000 </dev/null | grep -q hi &&
           [ "$(id -u nobody)" = 65534 ] && [ -w /tmp ]' \
    -- --change "ENV PATH=$default_path" --change 'CMD ["sh"]'
}

# copy_with_libs ROOT FILE: copies FILE, the shared libraries ldd says it
# loads and their dynamic loader to the same paths under ROOT.
copy_with_libs() {
  local root=$1 file=$2 lib
  [[ -e $file ]] || die "$file is missing"
  mkdir -p "$root$(dirname "$file")"
  cp -L "$file" "$root$file"
  # ldd prints `name => /path (address)`, and `/path (address)` for the loader.
  for lib in $(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    [[ -e $root$lib ]] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# The base of the nodes docker-compose.yml starts (deploy/node.Dockerfile
# adds the tinykube binary): a busybox root with iproute2's `ip`, which an
# agent uses for its pods' network namespaces and routes, and the C
# libraries a Rust binary built on this host loads (glibc, libm, libgcc_s;
# tinykube speaks TLS with rustls, so no OpenSSL). They are this host's,
# so a binary built here runs there; one built against a newer glibc
# than the host's would not.
build_node() {
  local repo=tinykube.local/node alias=1 version root ip libdir lib
  if ((!force)) && present "$repo" "$alias"; then
    say "$repo:$alias is present (--force rebuilds it)"
    return
  fi
  need_root "$repo" "apt-get and chroot"
  apt_need busybox-static iproute2
  version=$(upstream_version busybox-static)-ip$(upstream_version iproute2)
  say "building $repo:$version from Debian's busybox-static and iproute2"

  workdir
  root=$work/node
  busybox_root "$root"
  mkdir -p "$root"/{run,var/lib,var/tmp}
  chmod 1777 "$root/var/tmp"
  # iproute2's ip where busybox put its smaller applet (in /sbin; a merged
  # /usr host's is in /usr/sbin, a symlink in /sbin leads there). Debian's
  # busybox sh prefers its own applets to the PATH, so a shell script in
  # the image must call /sbin/ip by its path; exec (the agent's) does not.
  ip=$(PATH=/usr/sbin:/sbin:/usr/bin:/bin command -v ip) || die "no ip binary after installing iproute2"
  rm -f "$root/sbin/ip" "$root/usr/sbin/ip" "$root/bin/ip"
  copy_with_libs "$root" "$ip"
  [[ $ip == /sbin/ip ]] || ln -s "$ip" "$root/sbin/ip"
  # What a Rust program loads besides libc: the libraries beside libc.
  libdir=$(dirname "$(ldd "$ip" | awk '$1 == "libc.so.6" { print $3 }')")
  for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do
    [[ -e $libdir/$lib ]] || die "$libdir/$lib is missing"
    cp -L "$libdir/$lib" "$root$libdir/$lib"
  done
  rm -f "$root/etc/nsswitch.conf"
  cat >"$root/etc/nsswitch.conf" <<'EOF'
hosts: files dns
EOF
  chmod 0644 "$root/etc/nsswitch.conf"

  # shellcheck disable=SC2016 # expanded by the image's sh
  import "$root" "$repo" "$version" "$alias" \
    sh -c '/sbin/ip -V | grep -q iproute2 && /usr/sbin/ip -o link show lo >/dev/null' \
    -- --change "ENV PATH=$default_path" --change 'CMD ["sh"]'
}

# The first URI apt takes Debian's SUITE from, in sources.list's one-line
# format or in deb822 .sources files; falls back to a plain Debian suite's
# mirror (not debian-security), then to deb.debian.org.
debian_mirror() {
  local f pairs uri
  pairs=$(
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
      [[ -r $f ]] || continue
      case $f in
        *.list)
          # deb [options] URI SUITE COMPONENT...
          awk '{ sub(/#.*/, "") } $1 == "deb" {
                 i = 2
                 if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                 print $i, $(i + 1) }' "$f" ;;
        *.sources)
          awk 'function flush(   n, u, s, i, j) {
                 if (enabled != "no" && (" " types " ") ~ / deb /) {
                   n = split(uris, u, " "); split(suites, s, " ")
                   for (i = 1; i <= n; i++) for (j in s) print u[i], s[j]
                 }
                 types = uris = suites = enabled = key = ""
               }
               /^[ \t]*#/ { next }
               /^[ \t]*$/ { flush(); next }
               /^[ \t]/ { if (key == "uris") uris = uris " " $0; else if (key == "suites") suites = suites " " $0; next }
               {
                 key = tolower($0); sub(/:.*/, "", key)
                 val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                 if (key == "types") types = val
                 else if (key == "uris") uris = val
                 else if (key == "suites") suites = val
                 else if (key == "enabled") enabled = tolower(val)
               }
               END { flush() }' "$f" ;;
      esac
    done | awk '$1 ~ /^(https?:\/\/|file:\/)/'
  )
  uri=$(awk -v s="$suite" '$2 == s { print $1; exit }' <<<"$pairs")
  [[ -n $uri ]] || uri=$(awk '$2 ~ /^[a-z]+$/ && $1 !~ /security/ { print $1; exit }' <<<"$pairs")
  echo "${uri:-http://deb.debian.org/debian}"
}

build_python() {
  local repo=tinykube.local/python alias=3 version root mirror log start
  if ((!force)) && present "$repo" "$alias"; then
    say "$repo:$alias is present (--force rebuilds it)"
    return
  fi
  need_root "$repo" "debootstrap and chroot"
  apt_need debootstrap debian-archive-keyring
  mirror=${TINYKUBE_DEBIAN_MIRROR:-$(debian_mirror)}
  # debootstrap does not read apt's configuration; pass on apt's proxy.
  if [[ -z ${http_proxy:-} ]]; then
    local proxy=
    eval "$(apt-config shell proxy Acquire::http::Proxy)"
    if [[ -n $proxy && $proxy != DIRECT && $proxy != false ]]; then
      export http_proxy=$proxy
      say "using apt's HTTP proxy $proxy"
    fi
  fi

  workdir
  root=$work/python
  log=$work/debootstrap.out
  start=$(now)
  say "debootstrap --variant=minbase --include=python3 $suite from $mirror (a minute or two)"
  # In its own process group, waited for in the background: an INT or TERM
  # to this script then stops it at once rather than after it is done.
  # (Without job control a background child is no group leader, so setsid
  # does not fork and $! is the new group's id.)
  setsid debootstrap --variant=minbase --include=python3 "$suite" "$root" "$mirror" >"$log" 2>&1 </dev/null &
  child=$!
  if ! wait "$child"; then
    child=
    tail -n 20 "$log" >&2
    [[ -f $root/debootstrap/debootstrap.log ]] && tail -n 20 "$root/debootstrap/debootstrap.log" >&2
    die "debootstrap of $suite from $mirror failed (set TINYKUBE_DEBIAN_MIRROR to use another mirror)"
  fi
  child=
  say "debootstrap took $(since "$start")"
  version=$(chroot "$root" /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') ||
    die "python3 does not run in the new root file system"

  # Smaller: no apt caches or lists, no docs, man pages or translations
  # (copyright files stay), no logs; and the same for packages installed
  # later in images built on this one, as Debian's slim images do.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/usr/share/groff/* "$root"/usr/share/lintian/* \
    "$root"/tmp/* "$root"/var/tmp/* "$root"/debootstrap
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root/var/log" -type f -delete
  # Docker provides these; debootstrap copied the host's.
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
  mkdir -p "$root/var/lib/apt/lists/partial"
  cat >"$root/etc/dpkg/dpkg.cfg.d/tinykube-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF

  import "$root" "$repo" "$version" "$alias" \
    python3 -c 'import http.server, json, ssl, sqlite3, urllib.request, sys; print("python", sys.version.split()[0])' \
    -- --change "ENV PATH=$default_path" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]'
}

start=$(now)
for image in "${want[@]}"; do
  t=$(now)
  "build_$image"
  say "$image: $(since "$t")"
done
say "done in $(since "$start")"
docker images --filter 'reference=tinykube.local/*'
