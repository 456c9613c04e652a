set -eu
if [ "${RAILPACK:-0}" = 1 ] && [ -n "${BUILD_SECRET_NAMES:-}" ]; then
  hash=$(
    for name in $BUILD_SECRET_NAMES; do
      eval "value=\${$name}"
      printf '%s=%s\n' "$name" "$value"
    done | sha256sum | cut -d' ' -f1
  )
  set -- "$@" --opt "secrets-hash=$hash"
fi
buildctl "$@"
pattern='s/.*"containerimage\.digest" *: *"\(sha256:[0-9a-f]\{64\}\)".*/\1/p'
digest=$(sed -n "$pattern" "${METADATA_FILE:-/workspace/metadata.json}" | head -n 1)
if [ -z "$digest" ]; then echo "the build metadata has no containerimage.digest" >&2; exit 1; fi
echo "DEPLOY_MCP_DIGEST=$digest"
