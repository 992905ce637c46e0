from __future__ import annotations

from django.urls import path

from paging import link_views, shift_views, views

urlpatterns = [
    # Signed links from notifications: public, the link says who acts.
    path("a/<str:token>", link_views.action_link, name="action-link"),
    path("oncall", views.oncall_page, name="oncall"),
    path("oncall/<slug:slug>.ics", views.schedule_ical, name="schedule-ical"),
    path("oncall/mine", shift_views.my_shifts, name="my-shifts"),
    path("oncall/<slug:slug>/take", shift_views.take_shift, name="shift-take"),
    path("oncall/<slug:slug>/cover", shift_views.ask_cover, name="shift-cover"),
    path("oncall/cover/<int:pk>/accept", shift_views.accept_cover, name="cover-accept"),
    path("oncall/cover/<int:pk>/decline", shift_views.decline_cover, name="cover-decline"),
    path("oncall/cover/<int:pk>/cancel", shift_views.cancel_cover, name="cover-cancel"),
    path("oncall/people/<str:username>.ics", views.person_ical, name="person-ical"),
    path("account/notifications", views.notifications, name="notifications"),
    path("account/notifications/<int:pk>/test", views.test_notification, name="notification-test"),
    path("oncall/unreachable", views.unreachable_page, name="oncall-unreachable"),
    path("account/notifications/<int:pk>/row", views.notification_row, name="notification-row"),
    path("account/notifications/<int:pk>/delete", views.delete_method, name="notification-delete"),
]
