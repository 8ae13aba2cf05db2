"""{% filing_target report %}: where a filing goes (or went), in words for legal staff.

One line on the report's page and on the draft page: "Practice (local, nothing reaches NCMEC)",
"NCMEC test environment", "NCMEC production" or "Other endpoint: <url>" (cybertip_client.target).
A report with an NCMEC report id names the endpoint that gave it.
"""

from django import template

from legal.cybertip_client import same_endpoint, target

register = template.Library()


@register.inclusion_tag("admin/legal/cybertiplinereport/_filing_target.html")
def filing_target(report=None):
    now = target()
    sent = report is not None and bool(report.report_id) and bool(report.endpoint)
    return {
        "target": target(report.endpoint) if sent else now,
        "sent": sent,
        "now": now if sent and not same_endpoint(report.endpoint, now.url) else None,
    }
