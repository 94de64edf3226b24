"""Root URL map: each app owns its own urls.py under the same /p/<slug>/ project prefix."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="auth/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("webapp.health.urls")),
    path("", include("webapp.projects.urls")),
    path("", include("webapp.catalog.urls")),
    path("", include("webapp.generation.urls")),
    path("", include("webapp.annotation.urls")),
    path("", include("webapp.training.urls")),
    path("", include("webapp.evaluation.urls")),
    path("", include("webapp.api.urls")),
]
