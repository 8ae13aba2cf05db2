from django.urls import path

from detection.api.match import MatchView
from evidence.api import ReportMediaView
from legal.api import RecordsAnswerView

from . import views

app_name = "api"

urlpatterns = [
    path("reports/", views.ReportCreateView.as_view(), name="report-create"),
    path("reports/batch/", views.ReportBatchView.as_view(), name="report-batch"),
    path("events/", views.EventCreateView.as_view(), name="events"),
    path("match/", MatchView.as_view(), name="match"),
    path("reports/<int:report_id>/media/", ReportMediaView.as_view(), name="report-media"),
    path("records/", RecordsAnswerView.as_view(), name="records"),
]
