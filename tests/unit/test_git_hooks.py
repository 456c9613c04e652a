"""Git webhook deliveries, pure (`workflows.domain.git_hooks`), with payloads and headers in the providers'
documented formats (tests/support/git_deliveries.py):

- signatures: a valid one holds for GitHub (`sha256=` prefix), Gitea and Forgejo (plain hex); a wrong secret,
  a missing header, a tampered body, a GitHub signature without its prefix and a non-hex one do not;
- headers: the provider's own headers win over the GitHub compatibility ones Gitea/Forgejo also send; none: not
  a delivery;
- pushes: branch and `after` commit; tags and deleted branches deploy nothing; a malformed `after` is refused;
- pull requests: number, head sha and ref, fork or not, merged; Gitea's `synchronized` reads as `synchronize`;
- preview names stay within the name limit; the release key of a delivery is stable and per hook.
"""

from __future__ import annotations

import pytest

from tests.support.git_deliveries import delivery_headers, encode, pull_request_payload, push_payload, sign
from tools.push_deploys import preview_name, release_key
from workflows.domain.git_hooks import (
    BadDelivery,
    parse_pull_request,
    parse_push,
    read_headers,
    signature_of,
    signature_ok,
)
from workflows.domain.names import name_problem

SECRET = "s3cret-for-the-hook"
SHA = "a" * 40
HEAD = "b" * 40


@pytest.mark.parametrize("provider", ["github", "gitea", "forgejo"])
def test_a_valid_signature_holds(provider: str) -> None:
    body = encode(push_payload("main", SHA))
    h = read_headers(delivery_headers(provider, "push", body, SECRET, delivery="d-1"))  # type: ignore[arg-type]
    assert (h.provider, h.event, h.delivery) == (provider, "push", "d-1")
    assert signature_ok(SECRET, body, h.signature)


@pytest.mark.parametrize("provider", ["github", "gitea", "forgejo"])
def test_a_wrong_secret_a_tampered_body_and_no_signature_fail(provider: str) -> None:
    body = encode(push_payload("main", SHA))
    h = read_headers(delivery_headers(provider, "push", body, "another-secret"))  # type: ignore[arg-type]
    assert not signature_ok(SECRET, body, h.signature)
    signed = read_headers(delivery_headers(provider, "push", body, SECRET))  # type: ignore[arg-type]
    tampered = body.replace(b'"main"', b'"prod"')
    assert tampered != body and not signature_ok(SECRET, tampered, signed.signature)
    unsigned = read_headers(delivery_headers(provider, "push", body, None))  # type: ignore[arg-type]
    assert unsigned.signature is None and not signature_ok(SECRET, body, unsigned.signature)


def test_github_signature_needs_its_prefix_and_hex() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    base = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d"}
    bare = read_headers(base | {"X-Hub-Signature-256": sign(SECRET, body)})
    assert not signature_ok(SECRET, body, bare.signature)
    upper = read_headers(base | {"x-hub-signature-256": "sha256=" + sign(SECRET, body).upper()})
    assert signature_ok(SECRET, body, upper.signature)  # header names and hex digits: any case
    junk = read_headers(base | {"X-Hub-Signature-256": "sha256=zzzz\u00e9"})
    assert not signature_ok(SECRET, body, junk.signature)
    assert signature_of(SECRET, body) == sign(SECRET, body)


def test_the_providers_own_headers_win_and_a_request_without_any_is_no_delivery() -> None:
    body = b"{}"
    headers = delivery_headers("gitea", "pull_request", body, SECRET, delivery="gitea-1")
    headers["X-GitHub-Event"] = "push"  # what Gitea's compatibility header says does not matter
    h = read_headers(headers)
    assert (h.provider, h.event, h.delivery) == ("gitea", "pull_request", "gitea-1")
    with pytest.raises(BadDelivery, match="X-GitHub-Event"):
        read_headers({"Content-Type": "application/json"})


def test_a_push_to_a_branch_gives_branch_and_commit() -> None:
    push = parse_push(encode(push_payload("feature/x", SHA.upper())))
    assert push is not None and (push.branch, push.sha) == ("feature/x", SHA)


def test_tags_and_deleted_branches_deploy_nothing() -> None:
    tag = push_payload("main", SHA) | {"ref": "refs/tags/v1"}
    assert parse_push(encode(tag)) is None
    assert parse_push(encode(push_payload("main", "0" * 40, deleted=True))) is None


@pytest.mark.parametrize(("body", "problem"), [
    (b"not json", "not JSON"), (b"[1]", "not a JSON object"), (encode({"after": SHA}), "`ref`"),
    (encode(push_payload("main", "abc")), "full commit SHA"),
])
def test_malformed_pushes_are_refused_naming_the_field(body: bytes, problem: str) -> None:
    with pytest.raises(BadDelivery, match=problem):
        parse_push(body)


def test_a_pull_request_from_the_same_repository() -> None:
    pr = parse_pull_request(encode(pull_request_payload("opened", 7, HEAD, head_ref="feature")))
    assert (pr.action, pr.number, pr.head_sha, pr.head_ref, pr.base_ref) == ("opened", 7, HEAD, "feature", "main")
    assert not pr.fork and not pr.merged


def test_a_fork_and_a_deleted_fork_are_forks() -> None:
    fork = parse_pull_request(encode(pull_request_payload("opened", 8, HEAD, head_repo="mallory/web")))
    assert fork.fork
    gone = pull_request_payload("reopened", 8, HEAD)
    gone["pull_request"]["head"]["repo"] = None  # GitHub sends null once the fork is deleted
    assert parse_pull_request(encode(gone)).fork


def test_gitea_synchronized_and_a_merge() -> None:
    assert parse_pull_request(encode(pull_request_payload("synchronized", 3, HEAD))).action == "synchronize"
    merged = parse_pull_request(encode(pull_request_payload("closed", 3, HEAD, merged=True)))
    assert merged.action == "closed" and merged.merged


def test_a_pull_request_without_its_head_is_refused() -> None:
    payload = pull_request_payload("opened", 3, HEAD)
    del payload["pull_request"]["head"]["sha"]
    with pytest.raises(BadDelivery, match=r"`head\.sha`"):
        parse_pull_request(encode(payload))
    with pytest.raises(BadDelivery, match="number"):
        parse_pull_request(encode({"action": "opened", "pull_request": {}}))


def test_preview_names_fit_the_name_limit() -> None:
    assert preview_name("web", 12) == "web-pr12"
    long = preview_name("a-very-long-app-name", 12345)
    assert long.endswith("-pr12345") and name_problem(long) is None


def test_release_keys_are_per_hook_and_delivery() -> None:
    assert release_key("h1", "d") == release_key("h1", "d")
    assert release_key("h1", "d") != release_key("h2", "d") != release_key("h1", "e")
    assert len(release_key("h", "x" * 200)) <= 128
