"""The two pages a person sees: consent (which client, which tenant, which scopes) and refusal (why). Plain
server-rendered HTML; every value is escaped, and the pages may not be framed (clickjacking the consent)."""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

CONSENT_PATH = "/oauth/consent"
# No `form-action`: browsers apply it to the redirects after the post too, and the consent's answer is a
# redirect to the client's own URI (any origin, or a custom scheme).
_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "frame-ancestors 'none'", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}"
          "code{background:#eee;padding:0 .2rem}button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.6rem}")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
                        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>",
                        status_code=status, headers=_HEADERS)


def consent_page(*, login_id: str, nonce: str, client_name: str, redirect_host: str, user: str, tenant: str,
                 scopes: list[str]) -> HTMLResponse:
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes) or "<li>(none)</li>"
    return _page("Allow access to Deploy MCP?", (
        f"<p><strong>{escape(client_name)}</strong> (returning to <code>{escape(redirect_host)}</code>) asks to act "
        f"as GitHub user <strong>{escape(user)}</strong> in tenant <strong>{escape(tenant)}</strong>, with:</p>"
        f"<ul>{items}</ul>"
        f"<form method=post action={CONSENT_PATH}><input type=hidden name=login value=\"{escape(login_id)}\">"
        f"<input type=hidden name=consent value=\"{escape(nonce)}\">"
        "<button name=decision value=allow>Allow</button><button name=decision value=deny>Deny</button></form>"))


def refusal_page(reason: str, status: int = 403) -> HTMLResponse:
    return _page("Sign-in refused", f"<p>{escape(reason)}</p>", status)
