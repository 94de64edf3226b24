"""The WebSocket origin check. A browser sends any page's cookies with a socket it opens to us, so a
socket is accepted only from our own pages: its `Origin` must be the origin the browser reached us at
(scheme-less host:port equal to the `Host` header, as for a same-origin request) or one listed in
DJANGO_CSRF_TRUSTED_ORIGINS (a proxy that rewrites Host). Unlike channels' AllowedHostsOriginValidator
this holds with DJANGO_ALLOWED_HOSTS=* (the local default), where that one accepts every origin."""
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings


def origin_allowed(headers: list[tuple[bytes, bytes]]) -> bool:
    values = {name.lower(): value.decode("latin1") for name, value in headers}
    origin, host = values.get(b"origin", ""), values.get(b"host", "")
    if not origin or origin == "null":
        return False
    if origin.rstrip("/") in (o.rstrip("/") for o in settings.CSRF_TRUSTED_ORIGINS):
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()


class SameOriginValidator:
    """ASGI middleware for the websocket router: refuses the handshake (HTTP 403) from other origins."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope.get("headers", [])):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


CSP = ("default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


class ContentSecurityPolicyMiddleware:
    """A Content-Security-Policy on every response: scripts only from our own files, plus inline
    <script nonce="{{ request.csp_nonce }}"> blocks of our templates (a fresh nonce per request), so
    markup injected into a page runs nothing. Inline event handlers are not allowed: pages use
    data-confirm / data-autosubmit (static/site.js). Style attributes stay allowed (inline styles
    run no code)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        import secrets

        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP.format(nonce=request.csp_nonce))
        return response
