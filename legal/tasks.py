"""django-q2 tasks of the legal app. Delivery is at least once: each is safe to run twice."""


def legal_duty_sweep() -> dict:
    """The legal desk's deadlines: warnings and breaches, once each (schedule "legal-duties")."""
    from .duties import sweep

    return sweep().as_dict()


def file_cybertip_report(report_id: int) -> str:
    """File one CyberTipline report in the background ("File" queues it). Safe to run twice:
    a delivery again while a run lives does nothing (the report's lease, legal.filing)."""
    from .actions import run_filing

    report = run_filing(report_id)
    return "nothing to do" if report is None else f"{report.status}: {report.step_detail}"
