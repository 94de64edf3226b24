"""WebSocket routes of this app."""
from django.urls import path

from webapp.evaluation.consumers import EvaluationSocket

websocket_urlpatterns: list = [
    path("ws/p/<slug:slug>/evaluations/", EvaluationSocket.as_asgi()),
]
