"""WebSocket routes of training: the run list of a project and one run's live page."""
from django.urls import path

from webapp.training.consumers import ProjectRunsSocket, RunSocket

websocket_urlpatterns = [
    path("ws/p/<slug:slug>/training/", ProjectRunsSocket.as_asgi()),
    path("ws/p/<slug:slug>/training/runs/<int:run_id>/", RunSocket.as_asgi()),
]
