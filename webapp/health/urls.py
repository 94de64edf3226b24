from django.urls import path

from webapp.health import views

urlpatterns = [path("healthz", views.healthz, name="healthz")]
