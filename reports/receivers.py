"""The intake's answers to what the cases app announces (connected in ReportsConfig.ready,
inside the sender's transaction)."""

from cases import signals as case_signals

from . import acknowledgments


def on_case_decided(sender, *, case, decision, **kwargs) -> None:
    """The reporters who left a contact hear the outcome (Child Safety Standards §5.4)."""
    acknowledgments.acknowledge_decision(case, decision.violation)


def connect() -> None:
    case_signals.case_decided.connect(on_case_decided, dispatch_uid="reports_case_decided")
