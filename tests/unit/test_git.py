"""Git sources (workflows/domain/git_urls.py, git_refs.py) and the host check of the git adapter
(workflows/adapters/git.py), without a network.

- URLs: only https:// and SSH (ssh:// and scp-like) are accepted; http://, git://, file://, local paths, remote
  helpers (ext::), option injection, credentials in the URL, whitespace and control characters are refused
  with messages that say what is wrong and what a valid URL looks like, and never repeat a password.
- Refs: branch, tag, full ref and full SHA pass; a leading '-' and check-ref-format violations do not.
- Hosts: resolution is replaced; loopback, private, link-local, CGNAT, metadata (IPv4 and IPv6), unspecified,
  multicast and IPv4-mapped private addresses are refused with the host, the class and the setting, unless
  the host or the address is allowed; public addresses pass; ANY bad address refuses the host.
- `git ls-remote` output parsing, ref precedence, credentials' repr and transport.
- GitHub repositories: https `owner/repo` URLs on the configured GitHub hosts only.
"""

from __future__ import annotations

import socket

import pytest

from workflows.adapters import git as git_adapter
from workflows.adapters.git import (
    ALLOW_SETTING,
    GitHostUnresolvable,
    GitUnavailable,
    HostNotAllowed,
    allowed_addresses,
    check_host_allowed,
)
from workflows.domain.addresses import AllowList, address_class, parse_address
from workflows.domain.credentials import GitCredentials
from workflows.domain.git_refs import branch_summary, parse_ls_remote, pick_ref
from workflows.domain.git_urls import GitUrl, InvalidGitSource, check_ref, github_repository, is_full_sha, parse_git_url

SHA = "0123456789abcdef0123456789abcdef01234567"


# -- URLs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/owner/repo.git", GitUrl("https", "github.com", "/owner/repo.git")),
        ("https://GitHub.com/owner/repo", GitUrl("https", "github.com", "/owner/repo")),
        (
            "https://git.example.com:8443/group/sub/repo.git",
            GitUrl("https", "git.example.com", "/group/sub/repo.git", 8443),
        ),
        ("https://10.1.2.3/a/b.git", GitUrl("https", "10.1.2.3", "/a/b.git")),
        ("https://[2001:db8::1]:8443/a/b.git", GitUrl("https", "2001:db8::1", "/a/b.git", 8443)),
        ("ssh://git@github.com/owner/repo.git", GitUrl("ssh", "github.com", "/owner/repo.git", user="git")),
        (
            "ssh://git@git.example.com:2222/owner/repo.git",
            GitUrl("ssh", "git.example.com", "/owner/repo.git", 2222, "git"),
        ),
        ("ssh://gitea.example.com/owner/repo.git", GitUrl("ssh", "gitea.example.com", "/owner/repo.git")),
        ("git@github.com:owner/repo.git", GitUrl("ssh", "github.com", "owner/repo.git", user="git", scp_like=True)),
        ("git@gitlab.com:/group/repo.git", GitUrl("ssh", "gitlab.com", "/group/repo.git", user="git", scp_like=True)),
        ("git@[2001:db8::1]:o/r.git", GitUrl("ssh", "2001:db8::1", "o/r.git", user="git", scp_like=True)),
    ],
)
def test_valid_urls_parse(url: str, expected: GitUrl) -> None:
    parsed = parse_git_url(url)
    assert parsed == expected
    assert parse_git_url(parsed.url) == parsed, "the canonical form parses to itself"


def test_canonical_forms_and_helpers() -> None:
    assert parse_git_url("https://GitHub.com/owner/repo.git").url == "https://github.com/owner/repo.git"
    assert parse_git_url("git@github.com:owner/repo.git").url == "git@github.com:owner/repo.git"
    assert parse_git_url("ssh://git@h.example:2222/a/b.git").url == "ssh://git@h.example:2222/a/b.git"
    ipv6 = parse_git_url("https://[2001:db8::1]:8443/a/b.git")
    assert ipv6.netloc == "[2001:db8::1]:8443" and ipv6.is_ip and ipv6.effective_port == 8443
    assert parse_git_url("https://github.com/owner/repo.git").repo_path == "owner/repo"
    assert parse_git_url("git@github.com:owner/repo").repo_path == "owner/repo"
    assert parse_git_url("ssh://git@github.com/o/r.git").effective_port == 22


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "the URL is empty"),
        ("http://github.com/owner/repo.git", "plain http:// is not allowed"),
        ("HTTP://github.com/owner/repo.git", "plain http:// is not allowed"),
        ("git://github.com/owner/repo.git", "git:// is unauthenticated and unencrypted"),
        ("file:///srv/git/repo.git", "file:// URLs are not allowed"),
        ("/srv/git/repo.git", "local paths are not allowed"),
        ("./repo", "local paths are not allowed"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh%20-c%20id", "remote helper transports (ext::) are not allowed"),
        ("fd::17/foo", "remote helper transports (fd::) are not allowed"),
        ("-uhttps://github.com/owner/repo.git", "must not start with '-'"),
        ("--upload-pack=touch /tmp/x", "whitespace"),
        ("--upload-pack=id", "must not start with '-'"),
        ("ssh://-oProxyCommand=id/repo.git", "must not start with '-'"),
        ("git@-oProxyCommand=id:repo.git", "must not start with '-'"),
        ("git@github.com:-repo.git", "starts with '-'"),
        ("https://github.com/owner/repo.git\n", "whitespace or control characters"),
        ("https://github.com/own er/repo.git", "whitespace or control characters"),
        ("https://github.com/owner/repo.git\x00", "whitespace or control characters"),
        ("https://github.com/owner/repo.git?x=1", "no query string or fragment"),
        ("https://github.com/owner/repo.git#main", "no query string or fragment"),
        ("https://github.com/owner/../repo.git", "'.' and '..' are not allowed"),
        ("https://github.com/owner/%2e%2e/repo.git", "percent-encoded"),
        ("https://github.com", "the repository path is missing"),
        ("https://github.com/", "the repository path is missing"),
        ("https://github.com:99999/a/b.git", "outside 1-65535"),
        ("https://github.com:http/a/b.git", "is not a number"),
        ("https://gith_ub.com/a/b.git", "is not a DNS name"),
        ("ftp://example.com/a/b.git", "the ftp:// scheme is not supported"),
        ("git+ssh://git@github.com/a/b.git", "write git+ssh:// as ssh://"),
        ("github.com:owner/repo.git", "names the user"),
        ("git@github.com/owner/repo.git", "user@host:path"),
        ("git@[::1/repo.git", "IPv6 host is written"),
    ],
)
def test_invalid_urls_say_what_is_wrong(url: str, words: str) -> None:
    with pytest.raises(InvalidGitSource) as info:
        parse_git_url(url)
    message = str(info.value)
    assert words in message
    assert "https://github.com/owner/repo.git" in message, "the message shows what a valid URL looks like"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "url",
    [
        "https://x-access-token:ghp_SECRETSECRET@github.com/owner/repo.git",
        "https://ghp_SECRETSECRET@github.com/owner/repo.git",
        "https://user:ghp_SECRETSECRET@[2001:db8::1]/owner/repo.git",
        "ssh://git:ghp_SECRETSECRET@github.com/owner/repo.git",
        "git:ghp_SECRETSECRET@github.com:owner/repo.git",
    ],
)
def test_credentials_in_the_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(InvalidGitSource) as info:
        parse_git_url(url)
    message = str(info.value)
    assert "set_git_credentials" in message
    assert "SECRET" not in message


def test_url_length_is_capped() -> None:
    with pytest.raises(InvalidGitSource, match="at most 2048"):
        parse_git_url("https://github.com/" + "a" * 2100)


# -- refs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["main", "feature/login", "v1.2.0", "refs/heads/main", "refs/tags/v1", "release-2024_01", SHA]
)
def test_valid_refs(ref: str) -> None:
    assert check_ref(ref) == ref


def test_a_sha_is_lowercased() -> None:
    assert check_ref(SHA.upper()) == SHA
    assert is_full_sha(SHA) and is_full_sha("a" * 64) and not is_full_sha(SHA[:39]) and not is_full_sha(SHA.upper())


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("", "empty"),
        ("-main", "must not start with '-'"),
        ("--upload-pack=id", "must not start with '-'"),
        ("ma in", "whitespace"),
        ("main\n", "whitespace"),
        ("a..b", "'..'"),
        ("a@{1}", "'@{'"),
        ("main^", "~ ^ :"),
        ("HEAD~1", "~ ^ :"),
        ("a:b", "~ ^ :"),
        ("feat*", "~ ^ :"),
        ("/main", "start or end with '/'"),
        ("main.lock", "'.lock'"),
        ("a/.hidden", "start with '.'"),
        ("x" * 300, "at most 255"),
    ],
)
def test_invalid_refs(ref: str, words: str) -> None:
    with pytest.raises(InvalidGitSource) as info:
        check_ref(ref)
    assert words in str(info.value)
    assert "full 40-character commit SHA" in str(info.value)


# -- credentials ------------------------------------------------------------------------------------------------


def test_credentials_never_show_their_secrets() -> None:
    creds = GitCredentials(token="ghs_abcdefSECRET")
    assert "SECRET" not in repr(creds) and "SECRET" not in str(creds)
    assert repr(creds) == "GitCredentials(token)"
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAKEYMATERIALSECRET\n-----END OPENSSH PRIVATE KEY-----\n"
    ssh = GitCredentials(ssh_private_key=key)
    assert "KEYMATERIAL" not in repr(ssh)
    assert "AAAAKEYMATERIALSECRET" in ssh.secrets()
    assert repr(GitCredentials()) == "GitCredentials(anonymous)"
    with pytest.raises(ValueError, match="whitespace"):
        GitCredentials(token="a b")
    with pytest.raises(ValueError, match="PRIVATE KEY"):
        GitCredentials(ssh_private_key="not a key")
    with pytest.raises(ValueError, match="username"):
        GitCredentials(token="t", username="a:b")


# -- addresses and the host check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "cls"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata endpoint"),
        ("fd00:ec2::254", "cloud metadata endpoint"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT (100.64.0.0/10)"),
        ("100.127.255.254", "carrier-grade NAT (100.64.0.0/10)"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("::ffff:169.254.169.254", "cloud metadata endpoint (IPv4 169.254.169.254 inside IPv6)"),
        ("64:ff9b::7f00:1", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("192.0.2.10", "private"),
        ("198.18.0.1", "private"),
    ],
)
def test_non_public_addresses_are_classified(address: str, cls: str) -> None:
    assert address_class(parse_address(address)) == cls


@pytest.mark.parametrize("address", ["140.82.112.3", "1.1.1.1", "2606:4700:4700::1111", "::ffff:140.82.112.3"])
def test_public_addresses_pass(address: str) -> None:
    assert address_class(parse_address(address)) is None


def test_ipv6_scope_is_ignored() -> None:
    assert address_class(parse_address("fe80::1%eth0")) == "link-local"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Replaces resolution: host -> addresses; a missing host does not resolve."""
    table: dict[str, list[str]] = {}

    async def resolve(host: str, port: int | None = None) -> list[str]:
        if host == "flaky.example":
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host.lower() not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return sorted(table[host.lower()])

    monkeypatch.setattr(git_adapter, "resolve_addresses", resolve)
    return table


@pytest.mark.parametrize(
    ("addresses", "cls"),
    [
        (["127.0.0.1"], "loopback"),
        (["10.1.2.3"], "private"),
        (["169.254.169.254"], "cloud metadata endpoint"),
        (["fd00:ec2::254"], "cloud metadata endpoint"),
        (["100.64.1.1"], "carrier-grade NAT (100.64.0.0/10)"),
        (["140.82.112.3", "10.0.0.7"], "private"),  # ANY bad address refuses the host
    ],
)
async def test_hosts_resolving_to_non_public_addresses_are_refused(
    dns: dict[str, list[str]], addresses: list[str], cls: str
) -> None:
    dns["git.evil.example"] = addresses
    with pytest.raises(HostNotAllowed) as info:
        await check_host_allowed("git.evil.example", [])
    message = str(info.value)
    assert "git.evil.example" in message and cls in message and ALLOW_SETTING in message
    assert info.value.retryable is False


async def test_public_hosts_pass_and_return_their_addresses(dns: dict[str, list[str]]) -> None:
    dns["github.com"] = ["140.82.112.3", "2606:50c0:8000::154"]
    await check_host_allowed("github.com", [])
    assert await allowed_addresses("github.com") == ["140.82.112.3", "2606:50c0:8000::154"]


async def test_allow_list_by_host_address_or_network(dns: dict[str, list[str]]) -> None:
    dns["git.internal"] = ["10.20.0.5"]
    dns["localhost"] = ["127.0.0.1", "::1"]
    await check_host_allowed("git.internal", ["git.internal"])
    await check_host_allowed("GIT.internal", ["git.internal."])
    await check_host_allowed("git.internal", ["10.20.0.5"])
    await check_host_allowed("git.internal", ["10.20.0.0/16"])
    with pytest.raises(HostNotAllowed, match=r"::1"):
        await check_host_allowed("localhost", ["127.0.0.1"])  # ::1 is not allowed
    await check_host_allowed("localhost", ["127.0.0.1", "::1"])
    with pytest.raises(HostNotAllowed):
        await check_host_allowed("git.internal", ["10.21.0.0/16", "other.internal"])
    allow = AllowList.parse(["git.internal", " 10.0.0.0/8 ", "", "[fd00::1]"])
    assert allow.hosts == frozenset({"git.internal"}) and len(allow.networks) == 2


async def test_ip_literal_hosts_are_checked_too(dns: dict[str, list[str]]) -> None:
    dns["169.254.169.254"] = ["169.254.169.254"]
    with pytest.raises(HostNotAllowed, match=r"git host 169\.254\.169\.254 is a cloud metadata endpoint address"):
        await check_host_allowed("169.254.169.254", [])


async def test_resolution_failures(dns: dict[str, list[str]]) -> None:
    with pytest.raises(GitHostUnresolvable, match="does not resolve") as missing:
        await check_host_allowed("nope.example", [])
    assert missing.value.retryable is False
    with pytest.raises(GitUnavailable, match="try again later") as flaky:
        await check_host_allowed("flaky.example", [])
    assert flaky.value.retryable is True


# -- ls-remote --------------------------------------------------------------------------------------------------

LS_REMOTE = f"""ref: refs/heads/main\tHEAD
{SHA}\tHEAD
{SHA}\trefs/heads/main
{"1" * 40}\trefs/heads/feature
{"2" * 40}\trefs/tags/v1
{"3" * 40}\trefs/tags/v1^{{}}
{"4" * 40}\trefs/tags/feature
{"5" * 40}\trefs/pull/1/head
"""


def test_ls_remote_output_is_parsed_with_peeled_tags() -> None:
    remote = parse_ls_remote(LS_REMOTE)
    assert remote.head_target == "refs/heads/main"
    assert remote.refs["HEAD"] == SHA
    assert remote.refs["refs/tags/v1"] == "3" * 40, "an annotated tag names its commit"
    assert remote.branches() == ["feature", "main"]
    assert pick_ref(remote, "v1") == ("refs/tags/v1", "3" * 40)
    assert pick_ref(remote, "main") == ("refs/heads/main", SHA)
    assert pick_ref(remote, "feature") == ("refs/tags/feature", "4" * 40), "a tag wins over a branch, as in git"
    assert pick_ref(remote, "refs/heads/feature") == ("refs/heads/feature", "1" * 40)
    assert pick_ref(remote, "pull/1/head") == ("refs/pull/1/head", "5" * 40)
    assert pick_ref(remote, "nope") is None


def test_branch_summary_caps_at_ten() -> None:
    names = [f"b{i:02d}" for i in range(13)]
    assert branch_summary(names) == "branches: " + ", ".join(names[:10]) + " (and 3 more)"
    assert branch_summary([]) == "the repository has no branches"


@pytest.mark.parametrize(
    ("url", "hosts", "expected"),
    [
        ("https://github.com/acme/shop.git", ["github.com"], ("acme", "shop")),
        ("https://GitHub.com/acme/shop", ["github.com"], ("acme", "shop")),
        ("https://127.0.0.1:8443/acme/shop.git", ["127.0.0.1"], ("acme", "shop")),
        ("https://127.0.0.1:8443/acme/shop.git", ["127.0.0.1:8443"], ("acme", "shop")),
        ("https://127.0.0.1:8443/acme/shop.git", ["127.0.0.1:9999"], None),
        ("https://ghe.example.com/acme/shop.git", ["github.com"], None),  # not a host of that GitHub
        ("https://github.com/acme/group/shop.git", ["github.com"], None),  # GitHub paths are owner/repo
        ("https://github.com/shop.git", ["github.com"], None),
        ("git@github.com:acme/shop.git", ["github.com"], None),  # a token is an https credential
        ("ssh://git@github.com/acme/shop.git", ["github.com"], None),
    ],
)
def test_github_repository_is_owner_and_repo_on_a_github_host(
    url: str, hosts: list[str], expected: tuple[str, str] | None
) -> None:
    assert github_repository(parse_git_url(url), hosts) == expected


def test_credentials_fit_their_transport() -> None:
    https, ssh = parse_git_url("https://github.com/acme/shop.git"), parse_git_url("git@github.com:acme/shop.git")
    token = GitCredentials(token="ghs_x1234")
    key = GitCredentials(ssh_private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----")
    assert token.fits(https) and not token.fits(ssh)
    assert key.fits(ssh) and not key.fits(https)
