from django.urls import path

from webapp.projects import demo_loop_views, views

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("p/<slug:slug>/", views.project_home, name="project_home"),
    path("p/<slug:slug>/demo-loop/", demo_loop_views.demo_loop_start, name="demo_loop_start"),
    path("p/<slug:slug>/demo-loop.json", demo_loop_views.demo_loop_status, name="demo_loop_status"),
    path("p/<slug:slug>/members/", views.project_members, name="project_members"),
    path("p/<slug:slug>/members/<int:user_id>/remove", views.project_member_remove, name="project_member_remove"),
    path("p/<slug:slug>/invites/", views.project_invite_create, name="project_invite_create"),
    path("invite/<str:token>", views.invite_accept, name="invite_accept"),
]
