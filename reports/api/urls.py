from django.urls import path

from evidence.api import ReportMediaView

from . import views

app_name = "api"

urlpatterns = [
    path("reports/", views.ReportCreateView.as_view(), name="report-create"),
    path("reports/batch/", views.ReportBatchView.as_view(), name="report-batch"),
    path("reports/<int:report_id>/media/", ReportMediaView.as_view(), name="report-media"),
]
