"""django.contrib.admin with the back office's admin site (second factor required) as the
default site. A module of its own: it is loaded with the app registry, before any model."""

from django.contrib.admin.apps import AdminConfig


class BakkmeAdminConfig(AdminConfig):
    default_site = "bakkme_safety.admin_site.BakkmeAdminSite"
