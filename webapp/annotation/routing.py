"""WebSocket routes of this app: the annotation counters (members) and judge jobs (researchers)."""
from django.urls import path

from webapp.annotation.consumers import AnnotationSocket, JudgingSocket

websocket_urlpatterns: list = [path("ws/p/<slug:slug>/annotation/", AnnotationSocket.as_asgi()),
                               path("ws/p/<slug:slug>/judging/", JudgingSocket.as_asgi())]
