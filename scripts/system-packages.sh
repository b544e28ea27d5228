# Sourced by scripts/test: the Debian packages the tests drive (headless Chromium, pdftoppm/pdftotext/pdfsig,
# certutil to trust a workspace's signing certificate as a reader would, nginx as the reverse proxy in front of
# several API processes).
# Installs what is missing when it can (root, apt-get); otherwise names exactly what is missing.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
command -v certutil >/dev/null 2>&1 || need+=(libnss3-tools)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
fc-list 2>/dev/null | grep -qi "dejavu" || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "error: missing Debian packages: ${need[*]}" >&2
    echo "       install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
