"""Fake build-step images for the build Job on the testbed, where no BuildKit daemon, Railpack image or git image
can run (no network to pull them). Each is busybox plus one small script standing in for the tool the real
image ships, invoked exactly as the rendered Job invokes it:

- `fake-git` plays the clone step's `git init/fetch/checkout/rev-parse`; it prints a sha256 of the
  Authorization header git would send, so a test can check the token reached the step without ever printing it.
- `fake-railpack` plays `railpack prepare <dir> --plan-out F --info-out F` (writes a plan file).
- `fake-buildctl` plays `buildctl ... build ... --output type=image,name=N,push=true --metadata-file F`: BuildKit
  progress lines, then the metadata file BuildKit writes (`containerimage.digest`), here the digest of an image
  the test pushed beforehand. An image name containing `broken` fails the way a failing RUN step does; one
  containing `slow` runs a RUN step of 20 s first.
The Job's own scripts (clone and build, workflows/render/scripts/) run unchanged on busybox's sh.
"""

from __future__ import annotations

from mcp_server.devenv.images import BUSYBOX, FileSpec, Symlink, push_image

APPLETS = ("sh", "base64", "tr", "mkdir", "chmod", "cp", "cat", "echo", "printf", "sed", "head", "cut", "sha256sum",
           "sleep", "seq")

FAKE_GIT = r"""#!/bin/sh
# fake git (tests): the clone step's commands, without a network
set -eu
while [ "${1:-}" = "-c" ]; do shift 2; done
cmd=$1; shift
case "$cmd" in
  init) for a in "$@"; do d=$a; done; mkdir -p "$d"; echo "fake git: initialised $d" ;;
  fetch)
    hdr=$(printf '%s' "${GIT_CONFIG_VALUE_0:-}" | sha256sum | cut -d' ' -f1)
    echo "fake git: fetch $* (authorization sha256 $hdr)"
    echo "$GIT_SHA" > .fake-commit ;;
  checkout) echo "fake git: checkout $*" ;;
  rev-parse) cat .fake-commit ;;
  *) echo "fake git: unsupported command $cmd" >&2; exit 2 ;;
esac
"""

FAKE_RAILPACK = r"""#!/bin/sh
# fake railpack (tests): `railpack prepare DIR --plan-out F --info-out F`
set -eu
[ "$1" = prepare ] || { echo "fake railpack: only prepare" >&2; exit 2; }
dir=$2; shift 2; plan= info=
while [ $# -gt 0 ]; do
  case "$1" in --plan-out) plan=$2; shift ;; --info-out) info=$2; shift ;; esac
  shift
done
mkdir -p "$(dirname "$plan")"
echo '{"steps": [], "deploy": {"startCommand": "/busybox httpd -f -p 8080 -h /www"}}' > "$plan"
echo '{"detectedProviders": ["staticfile"]}' > "$info"
echo "fake railpack: planned $dir"
"""

FAKE_BUILDCTL = r"""#!/bin/sh
# fake buildctl (tests): no BuildKit runs here
set -eu
meta= name= frontend=
while [ $# -gt 0 ]; do
  case "$1" in
    --metadata-file) meta=$2; shift ;;
    --frontend) frontend=$2; shift ;;
    --secret)  # id=NAME,env=NAME: the value is in the environment; show that it arrived, by hash only
      id=$(echo "$2" | sed -n 's/^id=\([A-Za-z0-9_]*\),.*/\1/p')
      echo "fake buildctl: secret $id sha256 $(eval "printf '%s' \"\${$id}\"" | sha256sum | cut -d' ' -f1)"
      shift ;;
    --output) name=$(echo "$2" | sed -n 's/.*name=\([^,]*\).*/\1/p'); shift ;;
  esac
  shift
done
if [ -n "${DOCKER_CONFIG:-}" ]; then  # the push credentials the Job mounted: name the account, never the secret
  echo "fake buildctl: pushing as $(sed -n 's/.*"username":"\([^"]*\)".*/\1/p' "$DOCKER_CONFIG/config.json")"
fi
echo "#1 [internal] load build definition ($frontend)"
echo "#1 DONE 0.0s"
case "$name" in *slow*)  # a long RUN step, for a worker that dies while it runs
  echo "#5 [2/2] RUN ./long-step"
  for i in $(seq 1 "${FAKE_BUILD_SECONDS:-20}"); do echo "#5 $i.0 still working"; sleep 1; done
  echo "#5 DONE ${FAKE_BUILD_SECONDS:-20}.0s" ;;
esac
case "$name" in *broken*)
  echo "#5 [2/2] RUN exit 7"
  echo "#5 ERROR: process \"/bin/sh -c exit 7\" did not complete successfully: exit code: 7"
  echo "error: failed to solve: process \"/bin/sh -c exit 7\" did not complete successfully: exit code: 7" >&2
  exit 1 ;;
esac
echo "#6 exporting to image"
echo "#6 pushing manifest for $name@$FAKE_BUILD_DIGEST"
printf '{"containerimage.digest": "%s", "image.name": "%s"}\n' "$FAKE_BUILD_DIGEST" "$name" > "$meta"
"""


def _busybox_with(tool: str, script: str) -> dict[str, FileSpec]:
    files: dict[str, FileSpec] = {"bin/busybox": (BUSYBOX.read_bytes(), 0o755)}
    files |= {f"bin/{applet}": Symlink("busybox") for applet in APPLETS}
    files[f"bin/{tool}"] = (script.encode(), 0o755)
    return files


async def push_fake_build_images(registry: str, tenant: str, build_digest: str) -> dict[str, str]:
    """Push the three fake step images; returns BuildImages fields (clone, railpack, buildctl)."""
    env = {"PATH": "/bin"}
    images = {"clone": ("fake-git", FAKE_GIT, env), "railpack": ("fake-railpack", FAKE_RAILPACK, env),
              "buildctl": ("fake-buildctl", FAKE_BUILDCTL, env | {"FAKE_BUILD_DIGEST": build_digest})}
    refs = {}
    for field, (name, script, image_env) in images.items():
        tool = {"clone": "git", "railpack": "railpack", "buildctl": "buildctl"}[field]
        await push_image(registry, f"{tenant}/{name}", "v1", _busybox_with(tool, script), env=image_env)
        refs[field] = f"{registry}/{tenant}/{name}:v1"
    return refs
