"""What `git ls-remote` answers, read: the refs and HEAD's target, the candidates a ref name may mean (branch,
tag, full ref, SHA), the one picked, and a short list of branches for an error message.

Pure, so ref resolution is tested without a git server; the git adapter runs the command."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.domain.git_urls import is_full_sha

# --- what `git ls-remote` answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteRefs:
    """`git ls-remote [--symref]` output: `refs` maps a ref name (HEAD, refs/heads/x, refs/tags/y) to the commit it
    names (annotated tags peeled); `head_target` is what HEAD points at (refs/heads/main), when the server said."""

    refs: dict[str, str]
    head_target: str | None = None

    def branches(self) -> list[str]:
        return sorted(r.removeprefix("refs/heads/") for r in self.refs if r.startswith("refs/heads/"))


def parse_ls_remote(output: str) -> RemoteRefs:
    refs: dict[str, str] = {}
    peeled: dict[str, str] = {}
    head_target: str | None = None
    for line in output.splitlines():
        if line.startswith("ref: "):
            target, _, name = line[5:].partition("\t")
            if name == "HEAD":
                head_target = target.strip()
            continue
        sha, tab, name = line.partition("\t")
        if not tab or not is_full_sha(sha.strip()):
            continue
        name = name.strip()
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha.strip()
        else:
            refs[name] = sha.strip()
    refs.update(peeled)  # an annotated tag names the commit it points at, not the tag object
    return RemoteRefs(refs, head_target)


def ref_candidates(ref: str) -> list[str]:
    """The full ref names `ref` may mean, in git's order of precedence (gitrevisions: refs/<ref>, then
    refs/tags/<ref>, then refs/heads/<ref>)."""
    if ref.startswith("refs/"):
        return [ref]
    return [f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}"]


def pick_ref(remote: RemoteRefs, ref: str) -> tuple[str, str] | None:
    """(full ref name, commit) `ref` names on the remote, or None."""
    for candidate in ref_candidates(ref):
        if candidate in remote.refs:
            return candidate, remote.refs[candidate]
    return None


def branch_summary(branches: list[str], limit: int = 10) -> str:
    if not branches:
        return "the repository has no branches"
    shown = ", ".join(branches[:limit])
    more = f" (and {len(branches) - limit} more)" if len(branches) > limit else ""
    return f"branches: {shown}{more}"
