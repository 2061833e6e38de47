"""URLs of the meeting app (every page needs a login except the login page and static files)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("meetings/", views.meetings, name="meetings"),
    path("meetings/<str:key>/", views.meeting, name="meeting"),
    path("meetings/<str:key>/print/", views.print_view, name="print"),
    path("meetings/<str:key>/closed/", views.set_closed, name="set_closed"),
    path("meetings/<str:key>/homes/<str:dwelling_id>/", views.home_detail, name="home_detail"),
    path("meetings/<str:key>/homes/<str:dwelling_id>/decide/", views.decide, name="decide"),
    path("meetings/<str:key>/homes/<str:dwelling_id>/note/", views.add_note, name="add_note"),
    path("clients/<str:client_id>/", views.client_profile, name="client"),
    path("log/", views.decision_log, name="log"),
    path("log/decisions.<str:fmt>", views.export_log, name="export_log"),
    path("model/", views.model_info, name="model_info"),
    path("data/", views.dataset, name="dataset"),
    path("audit/", views.audit, name="audit"),
    path("audit/report/", views.audit_report, name="audit_report"),
    path("lang/", views.set_lang, name="set_lang"),
    path("admin/", admin.site.urls),
    re_path(r"^static/(?P<path>.*)$", views.static_file),
]
