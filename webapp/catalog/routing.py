"""WebSocket routes of this app."""
websocket_urlpatterns: list = []
