"""WebSocket URL map: the concatenation of each app's routing.websocket_urlpatterns."""
from webapp.annotation.routing import websocket_urlpatterns as annotation_ws
from webapp.evaluation.routing import websocket_urlpatterns as evaluation_ws
from webapp.generation.routing import websocket_urlpatterns as generation_ws
from webapp.training.routing import websocket_urlpatterns as training_ws

websocket_urlpatterns = [*annotation_ws, *generation_ws, *training_ws, *evaluation_ws]
