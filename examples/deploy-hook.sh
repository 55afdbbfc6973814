#!/usr/bin/env bash
# Deploy hook: run after the app (or templates) are deployed.
#
#   examples/deploy-hook.sh release          # full atomic rebuild: new release dir, then switch `current`
#   examples/deploy-hook.sh regen TARGET...  # regenerate only what changed, e.g. tag:template:base.html
#   examples/deploy-hook.sh enqueue TARGET...# hand targets to the running daemon (durable spool file)
#
# Exit codes follow kiln: 0 all good, 1 some pages failed, 2 bad usage or config.
set -euo pipefail
KILN=${KILN:-kiln}
CONFIG=${KILN_CONFIG:-/srv/site/site.toml}

case "${1:-}" in
  release)
    # A failed page keeps `current` on the last good release (kiln exits 1).
    "$KILN" --config "$CONFIG" build --release
    ;;
  regen)
    shift
    "$KILN" --config "$CONFIG" regen "$@"
    ;;
  enqueue)
    shift
    "$KILN" --config "$CONFIG" enqueue "$@"
    ;;
  *)
    echo "usage: $0 release | regen TARGET... | enqueue TARGET..." >&2
    exit 2
    ;;
esac
