"""django-q2 tasks of the evidence vault. Delivery is at least once: each is safe to run twice."""


def build_package(package_id: int) -> None:
    from .packages import build

    build(package_id)


def fail_dead_package_builds() -> int:
    from .packages import fail_dead_builds

    return fail_dead_builds()


def purge_expired_evidence() -> dict:
    from .retention import purge

    return purge().as_dict()


def write_ledger_checkpoint() -> str:
    """The schedule's signed checkpoint of the ledgers' heads (none when nothing moved)."""
    from .checkpoints import write_scheduled_checkpoint

    checkpoint = write_scheduled_checkpoint()
    return checkpoint.name if checkpoint else "unchanged"
