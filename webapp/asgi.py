"""ASGI entry point: HTTP through Django (its sync pipeline in one thread hop per request, see
webapp/http_handler.py), WebSockets through Channels' URL router."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
get_asgi_application()  # sets Django up (its stock handler is not used: see http_application)

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from webapp.routing import websocket_urlpatterns  # noqa: E402
from webapp.http_handler import http_application  # noqa: E402
from webapp.security import SameOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application(),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
