"""The API (/api/v1/) and the account page for its tokens."""
from django.urls import path

from webapp.api import views
from webapp.api.main import api

urlpatterns = [
    path("api/v1/", api.urls),
    path("account/tokens/", views.account_tokens, name="account_tokens"),
    path("account/tokens/<int:token_id>/revoke", views.account_token_revoke, name="account_token_revoke"),
]
