"""Shared plumbing for live events over Channels. Group names come from webapp/live_groups.py (one
scheme, with the role each group is for); each feature's `events.py` owns its message schema. This
module only publishes after commit and provides the base consumer that checks the project role on
connect, sends the catch-up, and relays group messages to the browser."""
import json

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from webapp.projects.models import ROLE_RANK, Project, Role


def publish_now(group: str, event: dict) -> None:
    """Sends `event` (JSON-able, with an "event" key naming its kind) to every socket in `group`.
    Dates, decimals and UUIDs become text here: the layer's msgpack refuses them, and that refusal
    would fail the task or request that published a perfectly good result."""
    payload = json.loads(json.dumps(event, cls=DjangoJSONEncoder))
    async_to_sync(get_channel_layer().group_send)(group, {"type": "relay", "payload": payload})


def publish(group: str, event: dict) -> None:
    """Publishes once the current transaction commits (immediately outside one), so a browser never
    hears of a row it cannot read yet."""
    transaction.on_commit(lambda: publish_now(group, event))


class ProjectSocket(AsyncWebsocketConsumer):
    """Base consumer for sockets under a project. Subclasses set `needed_role`, implement
    `groups_for(project, **url_kwargs)` and `snapshot(project, **url_kwargs)` (sync, run in a thread),
    the current state sent on connect so a reconnecting browser catches up: one message, or a list of
    messages sent in order (a long history goes in pages, each well under the 1 MiB frame limit)."""

    needed_role = Role.ANNOTATOR

    async def connect(self):
        kwargs = self.scope["url_route"]["kwargs"]
        project = await self._authorized_project(kwargs["slug"])
        if project is None:
            await self.close(code=4403)
            return
        self.joined = self.groups_for(project, **kwargs)
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        snapshot = await database_sync_to_async(self.snapshot)(project, **kwargs)
        for message in snapshot if isinstance(snapshot, list) else [snapshot] if snapshot is not None else []:
            await self.send(text_data=json.dumps(message, default=str))

    async def disconnect(self, code):
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def relay(self, message):
        await self.send(text_data=json.dumps(message["payload"], default=str))

    @database_sync_to_async
    def _authorized_project(self, slug):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return None
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            return None
        if user.is_superuser:
            return project
        membership = project.memberships.filter(user=user).first()
        if membership is None or ROLE_RANK[membership.role] < ROLE_RANK[self.needed_role]:
            return None
        return project

    def groups_for(self, project, **kwargs) -> list[str]:
        return []

    def snapshot(self, project, **kwargs):
        return None
