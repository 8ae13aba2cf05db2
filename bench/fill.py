"""Bulk fill for the benchmark: N cases and M reports, straight into the real tables.

Set-based SQL (INSERT ... SELECT over generate_series), one transaction, no Python object per row.
The distribution follows the policy in settings (category -> priority, live-stream P0, SLA
hours, warning fractions), so the rows are the ones the intake would have written:

- state: ~22% open (new 15%, in review 4%, escalated 3%), 6% decided, 72% closed; closed cases
  go back two years, open ones sit inside (or ~10% past) their SLA window;
- one non-closed case per subject (the partial unique constraint): every tenth closed case is an
  older case about the subject of the next one;
- 85% of subjects are accounts, 15% content with no account;
- reports per case: 1 + a heavy-tailed share of the rest (median 2, mean M/N, max a few
  hundred), the first report setting the case's category, surface and SLA window, later ones the
  same category (60%) or "other";
- in-review cases are held by one of the bench reviewers (with the guardian object permission
  the claim grants; a quarter of the claims expired), escalations to legal grant the legal group.

Not written: history rows (simple-history), CaseEvents, decisions and enforcement actions of
the decided/closed cases. The queue page, "next case" and the intake do not read them.

The measures change the data (claims, reports joining and reopening cases, new cases): snapshot()
keeps the fill's non-closed cases first and restore() puts them back and deletes what the run
added, so every run measures the same data.
"""

import time
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

# (value, weight): a child-safety platform's report mix.
CATEGORIES = [
    ("other", 40),
    ("underage_user", 15),
    ("grooming", 8),
    ("sexualizing_minors", 8),
    ("other_child_safety", 8),
    ("csam", 5),
    ("sextortion", 4),
    ("age_restricted_feature", 4),
    ("solicitation_of_minor", 3),
    ("exploitation_trafficking", 2),
    ("ai_generated_csae", 2),
    ("imminent_danger", 1),
]
SURFACES = [
    ("message", 25),
    ("chat", 15),
    ("post", 15),
    ("comment", 12),
    ("image", 10),
    ("video", 8),
    ("profile", 6),
    ("live_stream", 3),
    ("group", 2),
    ("group_post", 2),
    ("fundraiser", 2),
]
STATES = [("new", 15), ("in_review", 4), ("escalated", 3), ("decided", 6), ("closed", 72)]
ESCALATED_TO = [("senior_reviewer", 60), ("child_safety_officer", 25), ("legal", 15)]
SOURCES = [
    ("in_app", 70),
    ("automated", 12),
    ("email", 5),
    ("parent_guardian", 5),
    ("external_hotline", 3),
    ("staff", 3),
    ("law_enforcement", 2),
]
AGE_BANDS = [
    ("", 60),
    ("unknown", 10),
    ("13_15", 10),
    ("16_17", 8),
    ("under_13", 4),
    ("18_plus", 8),
]

OPEN_SQL = "('new', 'in_review', 'escalated')"
ACCOUNT_SUBJECT_PERCENT = 85
REVIEWERS = 20  # bench_reviewer_01 .. 20 hold the in-review cases
FILL_INTEGRATION = "bench-fill"


def pick(u: str, choices: list[tuple[str, int]]) -> str:
    """SQL: the value whose cumulative-weight slot the uniform draw `u` falls in."""
    total = sum(weight for _, weight in choices)
    branches, cumulative = [], 0
    for value, weight in choices[:-1]:
        cumulative += weight
        branches.append(f"WHEN {u} < {cumulative / total:.6f} THEN '{value}'")
    return f"(CASE {' '.join(branches)} ELSE '{choices[-1][0]}' END)"


def priority_sql(category: str, surface: str) -> str:
    """SQL: bakkme_safety.policy.priority_for, from the same settings."""
    p0_live = ", ".join(f"'{c}'" for c in settings.BAKKME_LIVE_STREAM_P0_CATEGORIES)
    by_category = " ".join(
        f"WHEN '{category_}' THEN {int(label[1:])}"
        for category_, label in settings.BAKKME_CATEGORY_PRIORITY.items()
    )
    return (
        f"(CASE WHEN {surface} = 'live_stream' AND {category} IN ({p0_live}) THEN 0 "
        f"ELSE (CASE {category} {by_category} END) END)"
    )


def window_hours_sql(priority: str) -> str:
    hours = settings.BAKKME_SLA_HOURS
    return f"(ARRAY[{hours['P0']}, {hours['P1']}, {hours['P2']}, {hours['P3']}])[{priority} + 1]"


def _plan_sql() -> str:
    """One row per case with everything the case and its reports need (a temp table)."""
    first, second = sorted(settings.BAKKME_SLA_WARNING_FRACTIONS)[:2]
    claim_minutes = settings.BAKKME_CLAIM_TIMEOUT_MINUTES
    return f"""
    CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
    WITH draws AS (
        SELECT g, random() AS u_state, random() AS u_cat, random() AS u_surf,
               random() AS u_age, random() AS u_act, random() AS u_misc,
               power(-ln(1 - random()), 2) AS weight
        FROM generate_series(1, %(cases)s) AS g
    ), shares AS (
        -- Reports beyond the first, shared out by weight so they add up to exactly M - N.
        SELECT *, sum(weight) OVER (ORDER BY g) AS cum FROM draws
    ), counted AS (
        SELECT *, 1 + floor(cum / max(cum) OVER () * %(extra)s)::int
                    - floor(coalesce(lag(cum) OVER (ORDER BY g), 0)
                            / max(cum) OVER () * %(extra)s)::int AS report_count
        FROM shares
    ), picked AS (
        SELECT g, u_age, u_act, u_misc, report_count,
               {pick("u_state", STATES)} AS state,
               {pick("u_cat", CATEGORIES)} AS category,
               {pick("u_surf", SURFACES)} AS surface
        FROM counted
    ), subject AS (
        SELECT *,
               CASE WHEN state = 'closed' AND g %% 10 = 0 AND g < %(cases)s
                    THEN g + 1 ELSE g END AS s
        FROM picked
    ), prioritised AS (
        SELECT *,
               (s * 2654435761) %% 100 < {ACCOUNT_SUBJECT_PERCENT} AS by_account,
               {priority_sql("category", "surface")} AS priority
        FROM subject
    ), started AS (
        SELECT *, make_interval(hours => {window_hours_sql("priority")}) AS window_,
               CASE WHEN state IN {OPEN_SQL}
                    THEN %(now)s::timestamptz - u_age * 1.1
                         * make_interval(hours => {window_hours_sql("priority")})
                    WHEN state = 'decided'
                    THEN %(now)s::timestamptz - u_age * interval '14 days' - interval '1 hour'
                    ELSE %(now)s::timestamptz - interval '14 days' - u_age * interval '716 days'
               END AS started_at
        FROM prioritised
    ), acted AS (
        SELECT *, started_at + window_ AS due_at,
               CASE WHEN state IN ('new', 'in_review') THEN NULL
                    WHEN state = 'escalated'
                    THEN started_at + u_act * (%(now)s::timestamptz - started_at)
                    ELSE least(%(now)s::timestamptz - interval '1 minute',
                               started_at + u_act * 1.15 * window_)
               END AS first_action_at
        FROM started
    )
    SELECT g, row_number() OVER (ORDER BY started_at, g) AS id, state, priority, category,
           surface, report_count, started_at, due_at, first_action_at,
           by_account, s,
           CASE WHEN by_account THEN 'account:u-' || s ELSE 'content:m-' || s END AS subject_key,
           CASE WHEN by_account THEN 'u-' || s ELSE '' END AS account_platform_id,
           CASE WHEN by_account THEN 'user_' || s ELSE '' END AS account_username,
           category <> 'other' AS is_child_safety,
           CASE WHEN state IN ('decided', 'closed') THEN first_action_at END AS decided_at,
           CASE WHEN state = 'closed'
                THEN least(%(now)s::timestamptz, first_action_at + u_misc * interval '7 days')
           END AS closed_at,
           CASE WHEN first_action_at IS NULL AND state IN {OPEN_SQL} AND due_at <= %(now)s
                THEN due_at
                WHEN first_action_at > due_at THEN due_at
           END AS breached_at,
           CASE WHEN state = 'escalated' THEN {pick("u_misc", ESCALATED_TO)} ELSE '' END
               AS escalated_to,
           CASE WHEN state = 'in_review'
                THEN (%(reviewers)s::int[])[1 + g %% cardinality(%(reviewers)s::int[])]
           END AS assignee_id,
           CASE WHEN state = 'in_review'
                THEN %(now)s::timestamptz - u_misc * interval '40 minutes' END AS claimed_at,
           CASE WHEN state = 'in_review'
                THEN %(now)s::timestamptz - u_misc * interval '40 minutes'
                     + interval '{claim_minutes} minutes'
           END AS claim_expires_at,
           -- The SLA clock of open cases with no first action: warnings sent so far, next one.
           CASE WHEN first_action_at IS NULL AND state IN {OPEN_SQL} THEN
               CASE WHEN %(now)s >= started_at + {second} * window_ THEN 2
                    WHEN %(now)s >= started_at + {first} * window_ THEN 1 ELSE 0 END
               ELSE 0 END AS sla_warnings_sent,
           CASE WHEN first_action_at IS NULL AND state IN {OPEN_SQL} THEN
               CASE WHEN %(now)s >= started_at + {second} * window_ THEN NULL
                    WHEN %(now)s >= started_at + {first} * window_
                    THEN started_at + {second} * window_
                    ELSE started_at + {first} * window_ END
           END AS sla_next_warning_at,
           CASE WHEN priority = 0 THEN started_at + interval '1 minute' END
               AS emergency_notified_at
    FROM acted
    """


CASES_SQL = """
    INSERT INTO cases_case (
        id, subject_key, account_platform_id, account_username, content_platform_id, state,
        priority, category, surface, is_child_safety, sla_started_at, due_at, report_count,
        assignee_id, claimed_at, claim_expires_at, escalated_to, first_action_at, breached_at,
        sla_warnings_sent, sla_next_warning_at, emergency_notified_at, created_at, updated_at,
        decided_at, closed_at)
    SELECT id, subject_key, account_platform_id, account_username,
           CASE WHEN by_account THEN 'c-' || id || '-1' ELSE 'm-' || s END,
           state, priority, category, surface, is_child_safety, started_at, due_at,
           report_count, assignee_id, claimed_at, claim_expires_at, escalated_to,
           first_action_at, breached_at, sla_warnings_sent, sla_next_warning_at,
           emergency_notified_at, started_at,
           coalesce(closed_at, decided_at, claimed_at, first_action_at, started_at),
           decided_at, closed_at
    FROM bench_plan
    ORDER BY id
"""


def _reports_sql() -> str:
    later_category = "CASE WHEN r.u_same < 0.6 THEN p.category ELSE 'other' END"
    later_surface = f"CASE WHEN r.u_same < 0.6 THEN p.surface ELSE {pick('r.u_surf', SURFACES)} END"
    return f"""
    INSERT INTO reports_report (
        integration_id, idempotency_key, payload_sha256, case_id, source, category, surface,
        priority, due_at, account_platform_id, account_username, account_date_of_birth,
        account_age_band, account_created_at, content_platform_id, content_type, content_text,
        content_url, reporter_platform_id, reporter_anonymous, reporter_contact, description,
        received_at, created_at)
    SELECT %(integration)s, key, md5(key) || md5(key || '.'), id, source, category, surface,
           priority, received_at + make_interval(hours => {window_hours_sql("priority")}),
           account_platform_id, account_username,
           CASE WHEN u_misc < 0.1 THEN date '2008-01-01' + (u_misc * 60000)::int END,
           {pick("u_band", AGE_BANDS)},
           CASE WHEN account_platform_id <> ''
                THEN date '2019-01-01' + (u_band * 2000)::int END,
           content_id, surface,
           'Reported ' || surface || ': ' || md5(key) || ' ' || md5(content_id),
           'https://bakkme.example/' || surface || '/' || content_id,
           CASE WHEN u_misc < 0.92 THEN 'u-' || (1 + (u_misc * 1000003)::int) ELSE '' END,
           u_misc >= 0.92, '',
           'Reported in the app as ' || category || '.', received_at,
           received_at + interval '2 seconds'
    FROM (
        SELECT *, {priority_sql("category", "surface")} AS priority
        FROM (
            SELECT p.id, p.account_platform_id, p.account_username,
                   'fill-' || p.id || '-' || r.k AS key,
                   CASE WHEN r.k = 1 THEN p.category ELSE {later_category} END AS category,
                   CASE WHEN r.k = 1 THEN p.surface ELSE {later_surface} END AS surface,
                   CASE WHEN p.by_account THEN 'c-' || p.id || '-' || r.k ELSE 'm-' || p.s END
                       AS content_id,
                   {pick("r.u_source", SOURCES)} AS source,
                   CASE WHEN r.k = 1 THEN p.started_at
                        ELSE p.started_at + r.u_time * (
                            coalesce(p.decided_at, %(now)s::timestamptz) - p.started_at)
                   END AS received_at,
                   r.u_misc, r.u_band
            FROM bench_plan AS p
            CROSS JOIN LATERAL (
                SELECT k, random() AS u_same, random() AS u_surf, random() AS u_source,
                       random() AS u_time, random() AS u_misc, random() AS u_band
                FROM generate_series(1, p.report_count) AS k
            ) AS r
        ) AS drawn
    ) AS rows
    ORDER BY received_at
    """


# The object permissions a claim grants its holder and an escalation to legal grants legal.
HOLDER_PERMISSIONS_SQL = """
    INSERT INTO cases_caseuserobjectpermission (permission_id, user_id, content_object_id)
    SELECT %(change_case)s, assignee_id, id FROM bench_plan WHERE assignee_id IS NOT NULL
"""
LEGAL_PERMISSIONS_SQL = """
    INSERT INTO cases_casegroupobjectpermission (permission_id, group_id, content_object_id)
    SELECT %(view_case)s, %(legal)s, id FROM bench_plan WHERE escalated_to = 'legal'
"""


def history_tables() -> list[str]:
    """The simple-history tables of the cases and reports apps (the fill writes none)."""
    from django.apps import apps

    return [
        model._meta.db_table
        for app in ["cases", "reports"]
        for model in apps.get_app_config(app).get_models()
        if model.__name__.startswith("Historical")
    ]


MARKER_SQL = """
    CREATE TABLE IF NOT EXISTS bench_fill (
        reports bigint NOT NULL, cases bigint NOT NULL, max_case_id bigint NOT NULL,
        seconds double precision NOT NULL, filled_at timestamptz NOT NULL)
"""


def existing_fill() -> dict | None:
    """The fill this database holds (size, time, when), from the bench's own marker table."""
    with connection.cursor() as cursor:
        cursor.execute(MARKER_SQL)
        cursor.execute("SELECT reports, cases, max_case_id, seconds, filled_at FROM bench_fill")
        row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(["reports", "cases", "max_case_id", "seconds", "filled_at"], row, strict=True))


def bench_users():
    """The reviewers holding the fill's in-review cases, and the one the measures act as."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    group = Group.objects.get(name="reviewer")
    users = []
    for name in ["bench_reviewer", *(f"bench_reviewer_{i:02d}" for i in range(1, REVIEWERS + 1))]:
        user, created = User.objects.get_or_create(username=name, defaults={"is_staff": True})
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.add(group)
        users.append(user)
    qualify(*users)
    return users[0], users[1:]


def qualify(*users) -> None:
    """A current compliance record (CSAE training, enhanced clearance), without which staff see
    no child-safety case (staff.compliance): the measures act as people who do the work."""
    from django.utils import timezone

    from staff.actions import update_compliance_record
    from staff.models import BackgroundCheck

    today = timezone.localdate()
    for user in users:
        update_compliance_record(
            user,
            actor=None,
            csae_training_on=today,
            general_training_on=today,
            background_check=BackgroundCheck.ENHANCED_CLEARED,
            background_checked_on=today,
        )


def bench_cso():
    """The Child Safety Officer the dashboard measure acts as."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, created = get_user_model().objects.get_or_create(
        username="bench_cso", defaults={"is_staff": True}
    )
    if created:
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name="child_safety_officer"))
    qualify(user)
    return user


def fill(reports: int, cases: int, now: datetime, seed: float = 0.42) -> dict:
    """Replace the cases and reports with `cases` cases holding `reports` reports; ANALYZE.

    Returns the timings of the steps (seconds).
    """
    from django.contrib.auth.models import Group, Permission

    from reports.actions import create_integration
    from reports.models import Integration

    if reports < cases:
        raise ValueError("Every case needs at least one report: --reports >= --cases.")
    _, holders = bench_users()
    integration = Integration.objects.filter(name=FILL_INTEGRATION).first()
    if integration is None:
        integration, _ = create_integration(FILL_INTEGRATION)
    perm = {
        p.codename: p.pk
        for p in Permission.objects.filter(
            content_type__app_label="cases", codename__in=["change_case", "view_case"]
        )
    }
    params = {
        "cases": cases,
        "extra": reports - cases,
        "now": now,
        "reviewers": [u.pk for u in holders],
        "integration": integration.pk,
        "change_case": perm["change_case"],
        "view_case": perm["view_case"],
        "legal": Group.objects.get(name="legal").pk,
    }
    steps = {}
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        # CASCADE empties every table pointing at cases or reports.
        tables = ", ".join(["cases_case", "reports_report", *history_tables()])
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        cursor.execute("DROP TABLE IF EXISTS bench_snapshot")
        cursor.execute("DELETE FROM django_q_schedule WHERE name LIKE 'sla-p0-case-%%'")
        cursor.execute("DELETE FROM django_q_ormq")
        cursor.execute("SELECT setseed(%s)", [seed])
        for name, sql in [
            ("plan", _plan_sql()),
            ("cases", CASES_SQL),
            ("reports", _reports_sql()),
            ("holder permissions", HOLDER_PERMISSIONS_SQL),
            ("legal permissions", LEGAL_PERMISSIONS_SQL),
        ]:
            step = time.perf_counter()
            cursor.execute(sql, params)
            steps[name] = time.perf_counter() - step
        for table in ["cases_case", "reports_report"]:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        cursor.execute("TRUNCATE bench_fill")
        cursor.execute(
            "INSERT INTO bench_fill VALUES (%s, %s, %s, 0, %s)", [reports, cases, cases, now]
        )
    step = time.perf_counter()
    vacuum_analyze(["cases_case", "reports_report"])
    steps["vacuum_analyze"] = time.perf_counter() - step
    steps["total"] = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("UPDATE bench_fill SET seconds = %s", [steps["total"]])
    return steps


def vacuum_analyze(tables: list[str]) -> None:
    """VACUUM (for index-only scans) and ANALYZE, outside a transaction."""
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.autocommit
    raw.autocommit = True
    try:
        with raw.cursor() as cursor:
            for table in tables:
                cursor.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.autocommit = previous


def describe() -> dict:
    """What the database holds now: counts by state, reports per case."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT state, count(*) FROM cases_case GROUP BY state ORDER BY state")
        states = dict(cursor.fetchall())
        cursor.execute(
            "SELECT count(*), percentile_disc(0.5) WITHIN GROUP (ORDER BY report_count),"
            " max(report_count), sum(report_count) FROM cases_case"
        )
        total, median, biggest, summed = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM reports_report")
        (report_rows,) = cursor.fetchone()
    return {
        "cases": total,
        "reports": report_rows,
        "states": states,
        "reports_per_case_median": median,
        "reports_per_case_max": biggest,
        "report_count_sum": summed,
    }


def snapshot() -> None:
    """Keep the cases the measures may change: the fill's non-closed ones."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_snapshot")
        cursor.execute(
            "CREATE TABLE bench_snapshot AS SELECT * FROM cases_case"
            " WHERE state <> 'closed' AND id <= (SELECT max_case_id FROM bench_fill)"
        )


def restore() -> bool:
    """Put the data back as filled (after a run, or at the start after a crashed one).

    The fill writes no events, history, notifications or schedules, so those tables are emptied;
    reports not sent by the fill integration and cases past the fill's last id are deleted; the
    snapshot's cases get their columns back and the claim permissions follow their assignees.
    """
    from django.contrib.auth.models import Permission

    from cases.models import Case

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_snapshot') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return False
    columns = [f.column for f in Case._meta.concrete_fields if f.column != "id"]
    change_case = Permission.objects.get(content_type__app_label="cases", codename="change_case")
    with transaction.atomic(), connection.cursor() as cursor:
        for table in [
            "cases_caseevent",
            *history_tables(),
            "staff_notification",
            "cases_slabreach",
            "cases_emergencychecklistitem",
            "cases_caseuserobjectpermission",
            "django_q_ormq",
        ]:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute("DELETE FROM django_q_schedule WHERE name LIKE 'sla-p0-case-%%'")
        cursor.execute(
            "DELETE FROM reports_report WHERE integration_id <>"
            " (SELECT id FROM reports_integration WHERE name = %s)",
            [FILL_INTEGRATION],
        )
        cursor.execute(
            "DELETE FROM cases_casegroupobjectpermission"
            " WHERE content_object_id > (SELECT max_case_id FROM bench_fill)"
        )
        cursor.execute("DELETE FROM cases_case WHERE id > (SELECT max_case_id FROM bench_fill)")
        cursor.execute(
            f"UPDATE cases_case AS c SET ({', '.join(columns)})"
            f" = ({', '.join(f's.{column}' for column in columns)})"
            " FROM bench_snapshot AS s WHERE c.id = s.id"
        )
        cursor.execute(
            "INSERT INTO cases_caseuserobjectpermission (permission_id, user_id, content_object_id)"
            " SELECT %s, assignee_id, id FROM cases_case WHERE assignee_id IS NOT NULL",
            [change_case.pk],
        )
        cursor.execute("DROP TABLE bench_snapshot")
    vacuum_analyze(["cases_case", "reports_report"])
    return True
