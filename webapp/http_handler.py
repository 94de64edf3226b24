"""The ASGI handler for plain HTTP: Django's own request pipeline, run synchronously in ONE worker
thread per request. Stock `ASGIHandler` runs the same sync middleware and views, but pays a thread
hop for every middleware's process_request and process_response, for each request signal and for
closing the response (about twenty hops per request). On the annotation API that was a third of
the server's CPU (profile in docs/benchmarks.md). Behaviour is Django's: the same middleware list,
views, signals and error handling, exactly as under WSGI. WebSockets stay with Channels (asgi.py).

Streaming responses are sent with Django's own async sender after the view returns, as before."""
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse
from django.urls import set_script_prefix


class OneHopASGIHandler(ASGIHandler):
    """HTTP through Django's sync pipeline, one thread hop per request."""

    def __init__(self, threads: int):
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        # Own pool: requests wait on PostgreSQL, so more threads than cores keep the cores busy.
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            # asgiref's executor hop (not a bare run_in_executor): async_to_sync inside the view, e.g.
            # a live-event publish, then runs on this server loop and its open Redis connection.
            response = await sync_to_async(self._respond, thread_sensitive=False, executor=self._pool)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:  # its body was produced while sending; close it afterwards, as Django does
                    await sync_to_async(response.close, thread_sensitive=False, executor=self._pool)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """The whole request, in one thread: request_started, middleware and view, and (for a
        body already in memory) close(), whose request_finished returns the DB connection."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response


def http_application():
    """What asgi.py routes HTTP to; DISTILLERY_HTTP_THREADS threads per server process."""
    return OneHopASGIHandler(threads=settings.HTTP_THREADS)
