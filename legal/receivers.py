"""The legal app's answers to what the lower apps announce (connected in LegalConfig.ready,
run inside the sender's transaction): the hand-off to the legal desk and the desk's duties."""

from cases import signals as case_signals
from evidence import signals as evidence_signals

from . import duties


def connect() -> None:
    case_signals.case_decided.connect(duties.on_case_decided, dispatch_uid="legal_case_decided")
    case_signals.csam_hash_matched.connect(
        duties.on_csam_hash_matched, dispatch_uid="legal_csam_hash_matched"
    )
    evidence_signals.package_requested.connect(
        duties.on_package_requested, dispatch_uid="legal_package_requested"
    )
    evidence_signals.package_downloaded.connect(
        duties.on_package_downloaded, dispatch_uid="legal_package_downloaded"
    )
