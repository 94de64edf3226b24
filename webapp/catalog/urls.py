"""Catalog URLs, under the project prefix."""
from django.urls import path

from webapp.catalog import endpoint_views, gguf_views, prompt_import_views, views

urlpatterns = [
    path("p/<slug:slug>/catalog/", views.catalog_home, name="catalog_home"),
    path("p/<slug:slug>/catalog/endpoints/", endpoint_views.endpoint_create, name="endpoint_create"),
    path("p/<slug:slug>/catalog/models/<int:version_id>/", endpoint_views.model_version_detail, name="model_version_detail"),
    path("p/<slug:slug>/catalog/models/<int:version_id>/probe", endpoint_views.endpoint_probe, name="endpoint_probe"),
    path("p/<slug:slug>/catalog/gguf/", gguf_views.gguf_register, name="gguf_register"),
    path("p/<slug:slug>/catalog/prompts/upload/", views.prompt_upload, name="prompt_upload"),
    path("p/<slug:slug>/catalog/prompts/upload/commit", views.prompt_upload_commit, name="prompt_upload_commit"),
    path("p/<slug:slug>/catalog/prompts/imports/<int:import_id>/", prompt_import_views.prompt_import_detail,
         name="prompt_import_detail"),
    path("p/<slug:slug>/catalog/prompts/imports/<int:import_id>/status.json", prompt_import_views.prompt_import_status,
         name="prompt_import_status"),
    path("p/<slug:slug>/catalog/prompts/<int:set_id>/", views.prompt_set_detail, name="prompt_set_detail"),
]
