from . import hold_admin, package_admin  # noqa: F401  (their admin classes register themselves)
