"""The stand-in NCMEC of the tests: the practice CyberTipline (legal/practice.py: the reporting
API's calls, answers and error codes, HTTP Basic authentication, every document validated
against the schema) on a free port, with its scripted faults: an NCMEC error code, an HTTP 5xx,
a connection dropped mid-request, a wrong MD5, a request held unanswered ("hang")."""

from legal.practice import PREFIX, PracticeCyberTipline, response  # noqa: F401

USERNAME = "esp-test"
PASSWORD = "placeholder-password"


class FakeNcmec(PracticeCyberTipline):
    def __init__(self):
        super().__init__(USERNAME, PASSWORD, first_report_id=70001)
