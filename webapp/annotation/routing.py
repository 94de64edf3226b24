"""WebSocket routes of this app."""
from django.urls import path

from webapp.annotation.consumers import AnnotationSocket

websocket_urlpatterns: list = [path("ws/p/<slug:slug>/annotation/", AnnotationSocket.as_asgi())]
