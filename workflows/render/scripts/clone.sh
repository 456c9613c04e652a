set -eu
src="${SOURCE_DIR:-/workspace/src}"
creds="${GIT_CREDENTIALS_DIR:-/git-credentials}"
tmp="${TMPDIR:-/tmp}"
if [ -n "${GIT_TOKEN:-}" ]; then
  auth=$(printf '%s:%s' "${GIT_USERNAME:-x-access-token}" "$GIT_TOKEN" | base64 | tr -d '\n')
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
  export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
  unset GIT_TOKEN auth
fi
if [ -f "$creds/ssh-privatekey" ]; then
  mkdir -p "$tmp/ssh" && chmod 700 "$tmp/ssh"
  cp "$creds/ssh-privatekey" "$tmp/ssh/key" && chmod 600 "$tmp/ssh/key"
  strict=accept-new
  if [ -f "$creds/known_hosts" ]; then
    cp "$creds/known_hosts" "$tmp/ssh/known_hosts"
    strict=yes
  fi
  export GIT_SSH_COMMAND="ssh -F /dev/null -i $tmp/ssh/key -o IdentitiesOnly=yes -o BatchMode=yes \
-o StrictHostKeyChecking=$strict -o UserKnownHostsFile=$tmp/ssh/known_hosts"
fi
g() {
  git -c protocol.allow=never -c protocol.https.allow=always -c protocol.ssh.allow=always \
    -c http.followRedirects=false -c credential.helper= -c advice.detachedHead=false "$@"
}
g init -q --template= "$src"
cd "$src"
echo "fetching $GIT_SHA"
if ! g fetch -q --depth=1 --no-tags "$GIT_URL" "$GIT_SHA"; then
  echo "the server will not serve a commit by SHA; fetching all branches and tags"
  g fetch -q --no-tags "$GIT_URL" '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'
fi
g checkout -q --detach "$GIT_SHA"
echo "checked out $(git rev-parse HEAD)"
