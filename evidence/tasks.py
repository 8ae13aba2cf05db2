"""django-q2 tasks of the evidence vault. Delivery is at least once: each is safe to run twice."""


def build_package(package_id: int) -> None:
    from .packages import build

    build(package_id)


def purge_expired_evidence() -> dict:
    from .retention import purge

    return purge().as_dict()
