from __future__ import annotations

from django.urls import path

from paging import link_views, views

urlpatterns = [
    # Signed links from notifications: public, the link says who acts.
    path("a/<str:token>", link_views.action_link, name="action-link"),
    path("oncall", views.oncall_page, name="oncall"),
    path("oncall/<slug:slug>.ics", views.schedule_ical, name="schedule-ical"),
    path("oncall/people/<str:username>.ics", views.person_ical, name="person-ical"),
    path("account/notifications", views.notifications, name="notifications"),
    path("account/notifications/<int:pk>/test", views.test_notification, name="notification-test"),
    path("oncall/unreachable", views.unreachable_page, name="oncall-unreachable"),
    path("account/notifications/<int:pk>/row", views.notification_row, name="notification-row"),
    path("account/notifications/<int:pk>/delete", views.delete_method, name="notification-delete"),
]
