from __future__ import annotations

from django.contrib import admin
from django.urls import path

from demo_site.shop import views

urlpatterns = [
    path("", views.index, name="index"),
    path("schedule/", views.schedule, name="schedule"),
    path("admin/", admin.site.urls),
]
