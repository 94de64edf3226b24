"""WebSocket routes of this app."""
from django.urls import path

from webapp.generation.consumers import GenerationSocket

websocket_urlpatterns: list = [path("ws/p/<slug:slug>/generation/", GenerationSocket.as_asgi())]
