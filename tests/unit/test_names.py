"""Names: validation messages, suggestions, and the Kubernetes names derived from platform names."""

from workflows.domain.names import (
    NAME_MAX,
    app_hostname,
    env_name_problem,
    name_problem,
    namespace_name,
    release_name,
    suggest_name,
)


def test_valid_names_pass() -> None:
    for ok in ("a", "web", "my-app-2", "0x", "a" * NAME_MAX):
        assert name_problem(ok) is None, ok


def test_invalid_names_say_why() -> None:
    assert name_problem("") == "must not be empty"
    assert name_problem("Web") == "must be lowercase"
    assert "at most 20" in (name_problem("a" * 21) or "")
    assert "start and end" in (name_problem("-web") or "")
    assert "start and end" in (name_problem("web_1") or "")
    assert name_problem("a--b") == "must not contain '--'"


def test_suggestions_are_valid() -> None:
    for bad in ("My_App!!", "--x--", "A" * 40, "ünïcode app", "___"):
        assert name_problem(suggest_name(bad)) is None, bad


def test_namespaces_cannot_collide_across_tenants() -> None:
    assert namespace_name("a-b", "c") != namespace_name("a", "b-c")
    ns = namespace_name("a" * NAME_MAX, "b" * NAME_MAX)
    assert len(ns) <= 63 and name_problem(ns, 63) is None


def test_hostname_is_one_label_under_the_apps_domain() -> None:
    h = app_hostname("a" * NAME_MAX, "b" * NAME_MAX, "c" * NAME_MAX, "apps.example.com")
    label, _, rest = h.partition(".")
    assert rest == "apps.example.com" and len(label) <= 63


def test_release_and_env_names() -> None:
    assert release_name("web", 3) == "web-r3"
    assert env_name_problem("DATABASE_URL") is None
    assert env_name_problem("1BAD") is not None
    assert env_name_problem("A-B") is not None
