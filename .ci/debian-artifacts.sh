#!/usr/bin/env bash
# Debian build artifacts whose measurements are reproduced by tests/measure/test_measure_debian.py
# (the expected values are in the shared vectors, measure/expected.json). Extracted, never
# installed, under $ATLS_DEBIAN_DIR (default /opt/atls-debian). Needs root and apt.
set -euo pipefail
dest="${ATLS_DEBIAN_DIR:-/opt/atls-debian}"
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Debian 12 cloud kernel (RTMR1/Authenticode vectors).
# The exact version may leave the archive index once superseded: then try the pool URL, and
# if that fails too, the kernel vectors skip (with the package named) instead of failing CI.
if [ ! -f "$dest/linux-image/boot/vmlinuz-6.1.0-56-cloud-amd64" ]; then
    deb=linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb
    if apt-get download -qq linux-image-6.1.0-56-cloud-amd64=6.1.192-2 \
        || python3 -c "import urllib.request,sys; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" \
            "http://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-amd64/$deb" "$deb"; then
        dpkg-deb -x "$deb" "$dest/linux-image"
    else
        echo "CI: could not fetch $deb; the Debian kernel vectors will skip" >&2
    fi
fi

# Debian 13 OVMF (TDVF metadata with the newer layout). Not in bookworm's sources, so it is
# fetched from the Debian archive's pool; the tests identify the file by its SHA-256.
if [ ! -f "$dest/ovmf-trixie/usr/share/ovmf/OVMF.fd" ]; then
    url=http://deb.debian.org/debian/pool/main/e/edk2/ovmf_2025.02-8+deb13u1_all.deb
    if python3 -c "import urllib.request,sys; urllib.request.urlretrieve(sys.argv[1], 'ovmf.deb')" "$url"; then
        dpkg-deb -x ovmf.deb "$dest/ovmf-trixie"
    else
        echo "CI: could not fetch $url; the Debian 13 OVMF vectors will skip" >&2
    fi
fi
ls -R "$dest" | grep -E 'OVMF.fd|vmlinuz' || true
